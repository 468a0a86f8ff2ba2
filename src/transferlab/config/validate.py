"""Checks on a composed config: cheap, no heavy imports, no data read. Each failure is one line.

Field ranges and choices live on the schemas (config/rules.py); the objective and the freeze policy check their own
cross-field rules; what a model is (kind, depth, position limit) comes from architectures.py. This module only
runs them, plus the rules about files and sources that belong to no group.
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from transferlab.config.optim import check_optim
from transferlab.config.optional import check_callbacks, check_load_in, check_mlflow
from transferlab.config.rules import check_fields, check_value
from transferlab.config.schema import TRAINER_RANGES
from transferlab.data.readers import SUFFIXES, suffix
from transferlab.errors import TransferlabError


def _check_trainer(cfg: DictConfig) -> None:
    for key, bounds in TRAINER_RANGES.items():
        value = cfg.trainer.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_value(f"trainer.{key}", value, bounds)


def _check_compile(cfg: DictConfig) -> None:
    if cfg.compile_mode != "default" and not cfg.compile:
        raise TransferlabError(
            f"compile_mode={cfg.compile_mode} applies only when compiling; add compile=true, or drop compile_mode"
        )


def _check_model(cfg: DictConfig, objective) -> None:
    from transferlab.models.architectures import check_fits, check_positions, config_fields

    model = cfg.model
    if model.arch and model.name_or_path:
        raise TransferlabError(
            "model.arch builds a model from scratch and model.name_or_path loads weights: set one of them "
            "(model=tiny_bert for scratch, model=pretrained model.name_or_path=PATH for weights)"
        )
    if not model.arch and not model.name_or_path:
        raise TransferlabError(
            "model=pretrained needs model.name_or_path=<hub id | local dir | a run's export/ dir> "
            "(or build from scratch with model.arch, e.g. model=tiny_bert)"
        )
    if model.random_init and not model.name_or_path:
        raise TransferlabError(
            "model.random_init=true takes the architecture of model.name_or_path; set model.name_or_path"
        )
    fields = config_fields(model)
    check_fits(objective, fields)
    check_positions(cfg.data.max_seq_len, fields)


def _check_data(cfg: DictConfig) -> None:
    data = cfg.data
    if data.bucket_by_length is False and data.bucket_window != 50:  # 50: the schema's default
        raise TransferlabError(
            f"data.bucket_window={data.bucket_window} sorts nothing with data.bucket_by_length=false; "
            "drop one of the two"
        )
    if data.source == "files":
        if not data.train:
            raise TransferlabError("data=files needs data.train=PATH (csv, tsv, json, jsonl, parquet or txt)")
        for split in ("train", "validation", "test"):
            path = data[split]
            if path is None:
                continue
            p = Path(path)
            if not p.is_file():
                raise TransferlabError(f"data.{split}: file not found: {path}; give an existing file")
            if data.format == "auto" and suffix(p) not in SUFFIXES:
                raise TransferlabError(
                    f"data.{split}: unsupported file type '{p.name}'; "
                    f"use one of {', '.join(SUFFIXES)} (optionally .gz); or set data.format=csv|json|parquet|text|conll"
                )
    elif not data.path:
        raise TransferlabError("data=hub needs data.path=<dataset id>")


def _check_mix(cfg: DictConfig, objective) -> None:
    """data=mix: every source is a data config of its own, checked as one (data/sources.py)."""
    from transferlab.data.sources import sources

    for source in sources(cfg):
        if source.data.text_pair_column:  # a pair's segment ids are decided once for all the prepared data
            raise TransferlabError(
                f"data.sources.{source.index}.text_pair_column: data=mix reads single texts; train on sentence "
                "pairs from one data set (data=files data.text_pair_column=...)"
            )
        with source.named():
            check_fields(source.data, "data.")
            _check_data(source.cfg)
            objective.check(source.cfg)
            _check_reads(source.data, objective)


def _check_reads(data: DictConfig, objective) -> None:
    """A data key that only some objectives read (Objective.reads), set for one that does not, is an error."""
    from transferlab.objectives import OBJECTIVES

    for key in sorted({k for o in OBJECTIVES.values() for k in o.reads} - set(objective.reads)):
        if data.get(key) is not None:
            readers = "|".join(n for n, o in OBJECTIVES.items() if key in o.reads)
            raise TransferlabError(
                f"data.{key}={data[key]} is read by objective={readers} only, not objective={objective.name}; "
                f"use objective={readers}, or drop data.{key}"
            )


def _check_streaming(cfg: DictConfig, objective) -> None:
    if not cfg.data.streaming:
        return
    if not objective.streams:
        from transferlab.objectives import OBJECTIVES

        packed = "|".join(name for name, o in OBJECTIVES.items() if o.streams)
        raise TransferlabError(
            f"data.streaming=true packs text as it is read, which objective={objective.name} does not do; "
            f"use objective={packed}, or data.streaming=false"
        )
    if not isinstance(cfg.trainer.get("max_steps"), int) or cfg.trainer.max_steps <= 0:
        raise TransferlabError(
            "data.streaming=true reads a stream with no length, so no epoch ends; set trainer.max_steps=N"
        )
    if cfg.tokenizer.source == "train" and not cfg.tokenizer.train_samples:
        raise TransferlabError(
            "data.streaming=true with tokenizer=train learns from the stream's first texts; "
            "set tokenizer.train_samples=N"
        )


def _check_tokenizer(cfg: DictConfig) -> None:
    if cfg.tokenizer.source == "pretrained" and not (cfg.tokenizer.name_or_path or cfg.model.name_or_path):
        raise TransferlabError(
            "tokenizer=pretrained loads the tokenizer of a pretrained model, but model.name_or_path is not set; "
            "use tokenizer=train, or set tokenizer.name_or_path=<dir or hub id>"
        )
    if cfg.tokenizer.source == "train" and cfg.model.name_or_path:
        raise TransferlabError(
            "tokenizer=train with pretrained weights would break the embedding table; use tokenizer=pretrained"
        )


def _check_resume(cfg: DictConfig) -> None:
    if cfg.resume not in ("never", "auto") and not Path(cfg.resume).is_file():
        raise TransferlabError(
            f"resume={cfg.resume}: no such checkpoint file; give a .ckpt path, resume=auto or resume=never"
        )


def _check_sweep_direction(cfg: DictConfig, monitor: tuple) -> None:
    """A sweeper optimises what each job returns, the monitored metric: its direction must agree with the mode."""
    direction = OmegaConf.select(cfg, "hydra.sweeper.direction", default=None)
    wanted = {"min": "minimize", "max": "maximize"}[monitor[1]]
    if isinstance(direction, str) and direction != wanted:
        raise TransferlabError(
            f"hydra.sweeper.direction={direction}, but each job returns {monitor[0]}, which is better when "
            f"{monitor[1]}imized; set hydra.sweeper.direction={wanted}"
        )


def validate(cfg: DictConfig) -> None:
    """All config checks; raises TransferlabError with one line. Resolves interpolations (e.g. ${run:...})."""
    from transferlab.freeze import FREEZE_POLICIES
    from transferlab.models.architectures import config_fields, depth
    from transferlab.objectives import OBJECTIVES, monitored

    try:
        check_fields(cfg)
        _check_trainer(cfg)
        _check_compile(cfg)
        check_optim(cfg)
        objective = OBJECTIVES[cfg.objective.name]
        _check_model(cfg, objective)
        if cfg.data.sources or cfg.data.name == "mix":
            _check_mix(cfg, objective)
        else:
            _check_data(cfg)
            objective.check(cfg)
            _check_reads(cfg.data, objective)
        _check_streaming(cfg, objective)
        _check_tokenizer(cfg)
        _check_resume(cfg)
        check_mlflow(cfg)
        check_callbacks(cfg)
        check_load_in(cfg)
        for where in ("checkpoint", "early_stopping"):
            if cfg.callbacks[where] is not None:
                monitored(cfg, cfg.callbacks[where], f"callbacks.{where}")
        _check_sweep_direction(cfg, monitored(cfg, cfg.callbacks.checkpoint))
        if cfg.model.arch or Path(str(cfg.model.name_or_path)).expanduser().is_dir():
            FREEZE_POLICIES[cfg.freeze.name].check(cfg.freeze, depth(config_fields(cfg.model)))
    except InterpolationResolutionError as e:
        message = str(e).splitlines()[0]
        raise TransferlabError(message.split("while resolving interpolation: ")[-1]) from e
