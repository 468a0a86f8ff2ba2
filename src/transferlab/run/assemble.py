"""Assembling a run: trainer, tokenizer, objective, model, freeze policy and data, in the order that fails cheapest.

transferlab-train (run/job.py) and transferlab-eval (cli/evaluate.py) build a run the same way, here.
"""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from transferlab.errors import TransferlabError


@dataclass
class Assembly:
    trainer: object
    module: object
    datamodule: object
    tokenizer: object
    policy: object
    summary: dict
    preparation: dict  # seconds waited for another process's preparation, seconds spent, prepared splits written


def _build_trainer(cfg: DictConfig, run_dir: Path, loggers: list):
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from transferlab.run.callbacks import build_callbacks
    from transferlab.run.checkpoints import AtomicCheckpointIO
    from transferlab.run.terminal import silence

    silence()
    kwargs = dict(cfg.trainer)
    # transferlab prints its own parameter table; Lightning's adds a FLOPs column that reads 0 for HF models
    kwargs.setdefault("enable_model_summary", False)
    # A preset names plugins by _target_ (trainer=ddp_multinode's SLURMEnvironment); they are built here
    plugins = [instantiate(p) if isinstance(p, DictConfig) else p for p in kwargs.get("plugins") or []]
    kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
    try:
        return pl.Trainer(
            **kwargs,
            default_root_dir=str(run_dir),
            logger=loggers or False,
            callbacks=build_callbacks(cfg, run_dir, bool(loggers)),
            enable_progress_bar=cfg.callbacks.progress_bar,
            enable_checkpointing=cfg.callbacks.checkpoint.enabled,
            use_distributed_sampler=False,
        )
    except TypeError as e:
        raise TransferlabError(f"trainer: {e}; see lightning.Trainer's arguments") from None


def assemble(
    cfg: DictConfig, run_dir: Path, loggers: list, rank_zero: bool, console, inputs=None, written: Path | None = None
) -> Assembly:
    """Trainer, tokenizer, objective, model, freeze policy and data, in the order that fails cheapest first.

    The model is built and frozen before the data is prepared, so that preparing can use what the policy says stays
    frozen. `inputs` are the splits check_inputs already loaded; without them (transferlab-eval) they load here.
    `written`: where evaluation's predictions/ and eval-set files go (default the run dir; transferlab-eval's own dir).
    """
    import lightning.pytorch as pl

    from transferlab.data.lock import preparing
    from transferlab.data.module import TransferDataModule, prepare_splits
    from transferlab.freeze import build_freeze_policy
    from transferlab.freeze.summary import format_parameter_table, parameter_summary
    from transferlab.models.build import build_model
    from transferlab.models.tokenizer import build_tokenizer
    from transferlab.objectives import OBJECTIVES
    from transferlab.run.module import TransferModule
    from transferlab.run.signals import stop_preparing_on_signals

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer = _build_trainer(cfg, run_dir, loggers)  # a bad trainer key fails before the tokenizer and model
    if inputs is None:
        from transferlab.run.preflight import check_inputs

        inputs = check_inputs(cfg, run_dir)
    raw = inputs.raw
    objective_cls = OBJECTIVES[cfg.objective.name]
    # One process prepares (trains the tokenizer, tokenizes, packs) while others on the same data wait (data/lock.py)
    with stop_preparing_on_signals(), preparing(cfg, lambda line: console.print(line, soft_wrap=True)) as preparation:
        tokenizer = build_tokenizer(cfg, raw["train"], run_dir, rank_zero, objective_cls)
        objective = objective_cls(cfg.objective, cfg.data, tokenizer, raw["train"])

        model = build_model(cfg, objective, tokenizer)
        policy = build_freeze_policy(cfg.freeze)
        model = policy.apply(model)
        summary = parameter_summary(model)
        if rank_zero:
            console.print(format_parameter_table(summary))
        # test=false: the test split is never read, so it is not prepared either
        datasets = prepare_splits({s: ds for s, ds in raw.items() if s != "test" or cfg.test}, objective)
        if rank_zero and objective.stats:
            console.print("data: " + ", ".join(f"{key} {n:,}" for key, n in objective.stats.items()), soft_wrap=True)
        featurizer = policy.featurizer(model) if objective.reads_features else None
        if featurizer is not None:  # a frozen trunk: its features once, not every step
            datasets = _frozen_features(cfg, trainer, featurizer, objective, datasets, console if rank_zero else None)
    module_class = TransferDataModule
    if cfg.data.sources:  # data=mix: training draws from the sources by weight
        from transferlab.data.mix import MixDataModule as module_class
    datamodule = module_class(datasets, objective, cfg.data, cfg.seed, static_shapes=cfg.compile)
    if rank_zero and datamodule.summary():
        console.print(datamodule.summary(), soft_wrap=True)
    written = run_dir if written is None else written
    module = TransferModule(
        model, objective, policy, cfg.optimizer, cfg.scheduler, cfg.on_nan, written / "predictions", written
    )
    if cfg.compile:
        objective.compile(model, cfg.compile_mode)  # what its step runs: the model in place, or the model and its loss
    return Assembly(trainer, module, datamodule, tokenizer, policy, summary, preparation)


def _frozen_features(cfg, trainer, model, objective, datasets, console) -> dict:
    import time

    from transferlab.data.features import cached_features
    from transferlab.data.module import eval_batch_size

    start = time.perf_counter()
    datasets, status = cached_features(
        datasets,
        model,
        objective.collator("val"),
        eval_batch_size(cfg.data),
        trainer.strategy.root_device,
        trainer.precision_plugin.forward_context,
        str(trainer.precision),
    )
    if console:
        shown = ", ".join(f"{split} {s}" for split, s in status.items())
        console.print(
            f"frozen features: {shown} in the cache, ready in {time.perf_counter() - start:.1f}s", soft_wrap=True
        )
    return datasets
