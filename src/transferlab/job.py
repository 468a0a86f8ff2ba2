"""One job, top to bottom: validate -> data -> tokenizer -> objective -> model -> freeze -> fit -> test -> export.

Any failure is written to metrics.json as status: failed with the error. A single run then exits non-zero with
one line; inside a sweep the job returns and the sweep goes on (the sweep's exit code reports the failures).
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from transferlab.cli import report
from transferlab.config.validate import validate
from transferlab.errors import TransferlabError


def _rank_zero() -> bool:
    # Lightning's DDP launcher starts ranks > 0 with these set; rank 0 is the process the user started.
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _hydra_context() -> tuple[Path, bool, str | None]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    group = Path(hc.sweep.dir).name if multirun else None
    return Path(hc.runtime.output_dir), multirun, group


def run_job(cfg: DictConfig):
    run_dir, multirun, group = _hydra_context()
    verbose = cfg.verbose or os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        validate(cfg)
        return train(cfg, run_dir, group)
    except (Exception, KeyboardInterrupt) as e:
        if _rank_zero():
            from transferlab.outputs import write_metrics

            write_metrics(run_dir, {"status": "failed", "error": f"{type(e).__name__}: {' '.join(str(e).split())}"})
        report(e, verbose)
        if multirun and not isinstance(e, KeyboardInterrupt):
            return float("nan")  # the sweep continues; its exit code reports the failure
        sys.exit(1)
    finally:
        if "wandb" in sys.modules:
            sys.modules["wandb"].finish()  # each job its own wandb run, even in one process


def _resume_path(cfg, run_dir: Path) -> str | None:
    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    return cfg.resume


@dataclass
class Assembly:
    trainer: object
    module: object
    datamodule: object
    tokenizer: object
    policy: object
    summary: dict
    throughput: object


def assemble(cfg: DictConfig, run_dir: Path, loggers: list, rank_zero: bool, console) -> Assembly:
    """Trainer, data, tokenizer, objective, model and freeze policy, in the order that fails cheapest first."""
    import lightning.pytorch as pl

    from transferlab.callbacks import build_callbacks
    from transferlab.data.loading import label_mapping, load_splits
    from transferlab.data.module import TransferDataModule, build_datasets
    from transferlab.freeze import build_freeze_policy
    from transferlab.freeze.summary import format_parameter_table, parameter_summary
    from transferlab.models import build_model
    from transferlab.module import TransferModule
    from transferlab.objectives import OBJECTIVES
    from transferlab.tokenizer import build_tokenizer

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    # The trainer is built first: a bad trainer key fails here, before any data is read.
    callbacks, throughput = build_callbacks(cfg, run_dir, None)
    try:
        trainer = pl.Trainer(**cfg.trainer, default_root_dir=str(run_dir), logger=loggers or False,
                             callbacks=callbacks, enable_progress_bar=cfg.callbacks.progress_bar,
                             enable_checkpointing=cfg.callbacks.checkpoint.enabled, use_distributed_sampler=False)
    except TypeError as e:
        raise TransferlabError(f"trainer: {e}; see lightning.Trainer's arguments") from None

    labeled = cfg.objective.name == "classification"
    raw = load_splits(cfg.data, labeled=labeled)
    label2id = label_mapping(raw) if labeled else None
    tokenizer = build_tokenizer(cfg, raw["train"], run_dir, rank_zero)
    objective = OBJECTIVES[cfg.objective.name](cfg.objective, tokenizer, label2id)
    datamodule = TransferDataModule(build_datasets(raw, tokenizer, objective, cfg.data), objective.collator, cfg.data, cfg.seed)

    model = build_model(cfg, objective.auto_class, tokenizer, objective.model_config())
    policy = build_freeze_policy(cfg.freeze)
    model = policy.apply(model)
    summary = parameter_summary(model)
    if rank_zero:
        console.print(format_parameter_table(summary))
    module = TransferModule(model, objective, policy, cfg.optimizer, cfg.scheduler, cfg.on_nan)
    if cfg.compile:
        import torch

        module.model = torch.compile(module.model)
    return Assembly(trainer, module, datamodule, tokenizer, policy, summary, throughput)


def train(cfg: DictConfig, run_dir: Path, group: str | None):
    from rich.console import Console

    from transferlab.loggers import build_loggers
    from transferlab.outputs import export, write_metrics

    console = Console(stderr=True)
    rank_zero = _rank_zero()
    if rank_zero:
        from rich.syntax import Syntax

        console.print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml", theme="ansi_dark"))
    resume_from = _resume_path(cfg, run_dir)
    loggers = build_loggers(cfg, run_dir, group) if rank_zero else []
    a = assemble(cfg, run_dir, loggers, rank_zero, console)
    trainer, module, datamodule = a.trainer, a.module, a.datamodule
    for logger in loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "params/trainable": a.summary["trainable"], "params/total": a.summary["total"]})

    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if "val/loss" not in trainer.callback_metrics:  # fit stopped mid-epoch (max_steps): validate the final weights
        trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        for result in trainer.test(module, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False):
            metrics.update(result)

    if not trainer.is_global_zero:
        return None
    metrics.update(a.throughput.metrics(trainer.world_size))
    metrics.update({"params/trainable": a.summary["trainable"], "params/total": a.summary["total"], "status": "ok"})
    if cfg.export:
        export_model, kind = a.policy.model_for_export(module.model)
        export(export_model, a.tokenizer, run_dir / "export")
        metrics["export/kind"] = kind
    write_metrics(run_dir, metrics)
    shown = {k: round(float(v), 4) for k, v in metrics.items() if k.startswith("test/")}
    console.print(f"[bold]test[/bold] {shown}  fit {metrics['time/fit_s']:.1f}s")
    console.print(f"[bold]run dir[/bold] {run_dir}")
    val_loss = metrics.get("val/loss")
    return float(val_loss) if val_loss is not None else None
