"""Cross-field checks on a composed config: cheap, no heavy imports, no data read. Each failure is one line."""

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from transferlab.errors import TransferlabError

# Architectures by attention direction: MLM needs bidirectional attention, CLM a causal mask.
ENCODER_ONLY = {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta", "camembert", "mpnet", "modernbert", "ernie"}
DECODER_ONLY = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi", "phi3", "gemma", "gemma2", "opt", "bloom", "falcon", "olmo", "smollm3"}

CHOICES = {
    "resume": None,  # never | auto | a path: checked below
    "on_nan": {"stop", "skip"},
    "scheduler.name": {"linear", "cosine", "constant"},
    "data.source": {"files", "hub"},
    "data.encoding_errors": {"strict", "replace"},
    "tokenizer.source": {"pretrained", "train"},
    "freeze.head": {"linear", "mlp"},
    "freeze.interval": {"epoch", "step"},
    "callbacks.checkpoint.mode": {"min", "max"},
}

FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt")


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def model_type(model_cfg) -> str | None:
    """The HF model_type, from the config for scratch builds or from a local dir's config.json; None if unknown yet."""
    if model_cfg.arch:
        return model_cfg.arch
    path = Path(str(model_cfg.name_or_path)) / "config.json"
    if path.is_file():
        return json.loads(path.read_text()).get("model_type")
    return None  # a hub id: checked again once its config is loaded


def check_objective_fits_model(objective: str, mtype: str | None) -> None:
    if objective == "clm" and mtype in ENCODER_ONLY:
        raise TransferlabError(
            f"objective=clm needs a decoder-only model, but model type '{mtype}' is encoder-only (bidirectional); "
            "use objective=mlm, or a decoder such as model=tiny_gpt2"
        )
    if objective == "mlm" and mtype in DECODER_ONLY:
        raise TransferlabError(
            f"objective=mlm needs an encoder-only model, but model type '{mtype}' is decoder-only (causal); "
            "use objective=clm, or an encoder such as model=tiny_bert"
        )


def _check_choices(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = _get(cfg, key)
        if allowed and value is not None and value not in allowed:
            raise TransferlabError(f"{key}={value} is not one of: {', '.join(sorted(allowed))}")


def _check_model(cfg: DictConfig) -> None:
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
        raise TransferlabError("model.random_init=true takes the architecture of model.name_or_path; set model.name_or_path")
    check_objective_fits_model(cfg.objective.name, model_type(model))
    max_pos = model.config.get("max_position_embeddings") or model.config.get("n_positions")
    if max_pos and cfg.data.max_seq_len > max_pos:
        raise TransferlabError(
            f"data.max_seq_len={cfg.data.max_seq_len} exceeds the model's {max_pos} position embeddings; "
            f"lower data.max_seq_len or raise the model's max_position_embeddings/n_positions"
        )


def _check_data(cfg: DictConfig) -> None:
    data = cfg.data
    if not 0 < data.train_fraction <= 1:
        raise TransferlabError(f"data.train_fraction={data.train_fraction} must be in (0, 1]; e.g. data.train_fraction=0.1 keeps 10% of train")
    if not 0 < data.validation_fraction < 1:
        raise TransferlabError(f"data.validation_fraction={data.validation_fraction} must be in (0, 1)")
    for key in ("max_train_samples", "max_eval_samples"):
        if data[key] is not None and data[key] < 1:
            raise TransferlabError(f"data.{key}={data[key]} must be a positive number of examples, or null for all")
    if data.max_seq_len < 8:
        raise TransferlabError(f"data.max_seq_len={data.max_seq_len} is too short; use at least 8 tokens")
    if cfg.objective.name == "classification" and not data.label_column:
        raise TransferlabError(
            f"objective=classification needs labeled data, but data={data.name} has no data.label_column; "
            "set data.label_column=<column> or use an LM objective (objective=mlm|clm)"
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
            suffixes = [s for s in p.suffixes if s != ".gz"]
            if not suffixes or suffixes[-1] not in FILE_SUFFIXES:
                raise TransferlabError(f"data.{split}: unsupported file type '{p.name}'; use one of {', '.join(FILE_SUFFIXES)} (optionally .gz)")
    elif not data.path:
        raise TransferlabError("data=hub needs data.path=<dataset id>")


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
        raise TransferlabError(f"resume={cfg.resume}: no such checkpoint file; give a .ckpt path, resume=auto or resume=never")


def validate(cfg: DictConfig) -> None:
    """All cross-field checks; raises TransferlabError with one line. Resolves interpolations (e.g. ${run:...})."""
    try:
        _check_choices(cfg)
        _check_model(cfg)
        _check_data(cfg)
        _check_tokenizer(cfg)
        _check_resume(cfg)
        if cfg.freeze.name == "top_k" and cfg.freeze.k < 1:
            raise TransferlabError(f"freeze.k={cfg.freeze.k} must be at least 1")
    except InterpolationResolutionError as e:
        message = str(e).splitlines()[0]
        raise TransferlabError(message.split("while resolving interpolation: ")[-1]) from e
