"""One job, top to bottom: validate -> inputs -> tokenizer -> objective -> model -> freeze -> data -> fit -> test ->
export.

Any failure is written to metrics.json as status: failed with the error. A single run then exits non-zero with
one line; inside a sweep the job returns and the sweep goes on (the sweep's exit code reports the failures).
A run stopped by SIGTERM or Ctrl+C saves last.ckpt first and says how to resume it (resume=auto); one stopped while
preparing data stops its tokenizer processes and keeps nothing half-written (signals.py). Both are status: interrupted.
"""

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from transferlab.cli.front import report
from transferlab.config.validate import validate
from transferlab.errors import Interrupted
from transferlab.run.assemble import Assembly, assemble


def _rank_zero() -> bool:
    from transferlab.config import first_process

    return first_process()


def hydra_context() -> tuple[Path, bool, str | None]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    group = Path(hc.sweep.dir).name if multirun else None
    return Path(hc.runtime.output_dir), multirun, group


def run_job(cfg: DictConfig):
    run_dir, multirun, group = hydra_context()
    verbose = cfg.verbose or os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        validate(cfg)
        from transferlab.run.preflight import check_inputs

        inputs = check_inputs(cfg, run_dir)  # bad input answers here, before torch/Lightning/transformers load
        return train(cfg, run_dir, group, inputs)
    except (Exception, KeyboardInterrupt) as e:
        if _rank_zero():
            from transferlab.run.rundir import record_failure

            record_failure(run_dir, e)
            report(e, verbose)
        elif not isinstance(e, Interrupted):  # every rank stops on a signal; rank 0 alone says how to resume
            report(e, verbose)
        if multirun and not isinstance(e, (KeyboardInterrupt, Interrupted)):
            return float("nan")  # the sweep continues; its exit code reports the failure
        sys.exit(getattr(e, "exit_code", 1))
    finally:
        if "wandb" in sys.modules:
            sys.modules["wandb"].finish()  # each job its own wandb run, even in one process
        if "transferlab.run.tracking" in sys.modules:  # logger=mlflow: metrics.json, the files and the outcome
            sys.modules["transferlab.run.tracking"].end_run(run_dir)


def _callback(trainer, kind):
    return next(c for c in trainer.callbacks if isinstance(c, kind))


@contextmanager
def _stop_cleanly_on_signals(a: Assembly, run_dir: Path):
    """SIGTERM or Ctrl+C during fit/validate/test: last.ckpt is saved (see LastCheckpoint); exit saying how to
    resume."""
    from hydra.core.hydra_config import HydraConfig
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from transferlab.run.checkpoints import LastCheckpoint
    from transferlab.run.signals import interrupted, sigint_as_sigterm

    with sigint_as_sigterm() as signals:
        try:
            yield
        except SIGTERMException:
            last = next((c for c in a.trainer.callbacks if isinstance(c, LastCheckpoint)), None)
            raise interrupted(signals, last, list(HydraConfig.get().overrides.task), run_dir) from None


def _fit_and_evaluate(cfg: DictConfig, a: Assembly, resume_from: str | None) -> dict:
    """fit (continuing resume_from), validate the final weights once, test the best checkpoint: the metrics."""
    from transferlab.run.callbacks import LastValidation
    from transferlab.run.preflight import check_checkpoint_fits

    trainer, module, datamodule = a.trainer, a.module, a.datamodule
    if resume_from:
        check_checkpoint_fits(module, resume_from)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    if _callback(trainer, LastValidation).step != trainer.global_step:  # e.g. check_val_every_n_epoch skipped it
        trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics.update(_best_score(trainer))
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(
            module, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False, weights_only=True
        )
        for result in results:
            metrics.update(result)
    return metrics


def _best_score(trainer) -> dict:
    """{"val/best_<metric>": score} of the checkpoint that test reads (the best by the checkpoint's monitor, e.g.
    val/best_loss): what a choice on validation must compare, since the final weights' val/* may be worse."""
    ckpt = trainer.checkpoint_callback
    score = getattr(ckpt, "best_model_score", None)
    if ckpt is None or score is None or not ckpt.best_model_path or not str(ckpt.monitor).startswith("val/"):
        return {}
    return {"val/best_" + ckpt.monitor.removeprefix("val/"): float(score)}


def _write_rank_record(cfg: DictConfig, run_dir: Path, a: Assembly) -> None:
    """TRANSFERLAB_DEBUG_RANKS=1: each rank records its run dir, config hash, its share of the data preparation and
    the prepared splits it read (tests compare DDP ranks)."""
    import hashlib
    import json

    trainer = a.trainer
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "output_dir": str(run_dir.resolve()),
        "config_sha256": hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=True).encode()).hexdigest(),
        "preparation": a.preparation,
        "data": {split: getattr(ds, "fingerprint", None) for split, ds in a.datamodule.datasets.items()},
    }
    (run_dir / "ranks").mkdir(exist_ok=True)
    (run_dir / "ranks" / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def train(cfg: DictConfig, run_dir: Path, group: str | None, inputs):
    from rich.console import Console

    from transferlab.objectives import monitored
    from transferlab.run.callbacks import Throughput
    from transferlab.run.loggers import build_loggers
    from transferlab.run.outputs import export, write_metrics

    console = Console(stderr=True)
    rank_zero = _rank_zero()
    if rank_zero:
        for split, n in inputs.dropped.items():
            console.print(f"data.{split}: dropped {n} rows with a missing value (data.missing=drop)")
    if rank_zero:
        from transferlab.run.terminal import show_run

        show_run(console, cfg, run_dir)
    if inputs.resume_from and rank_zero and cfg.tokenizer.source == "train":
        from transferlab.run.resume import adopt_tokenizer

        adopt_tokenizer(inputs.resume_from, run_dir)
    loggers = build_loggers(cfg, run_dir, group, resuming=inputs.resume_from is not None) if rank_zero else []
    a = assemble(cfg, run_dir, loggers, rank_zero, console, inputs)
    trainer, module = a.trainer, a.module
    for logger in loggers:
        logger.log_hyperparams(
            {
                **OmegaConf.to_container(cfg, resolve=True),
                "params/trainable": a.summary["trainable"],
                "params/total": a.summary["total"],
            }
        )

    with _stop_cleanly_on_signals(a, run_dir):
        metrics = _fit_and_evaluate(cfg, a, inputs.resume_from)
    if os.environ.get("TRANSFERLAB_DEBUG_RANKS") == "1":
        _write_rank_record(cfg, run_dir, a)

    data_stats = a.datamodule.stats()  # every rank: a mix sums its draws over the ranks
    if not trainer.is_global_zero:
        return None
    metrics.update(_callback(trainer, Throughput).metrics(trainer.world_size))
    metrics.update({"params/trainable": a.summary["trainable"], "params/total": a.summary["total"], "status": "ok"})
    metrics.update({f"data/dropped_{split}": n for split, n in inputs.dropped.items()})
    metrics.update(inputs.data_record())  # what the report compares runs by, and their label count
    metrics.update({f"data/{key}": n for key, n in {**module.objective.stats, **data_stats}.items()})
    if cfg.export:
        export_model, kind = a.policy.model_for_export(module.model)
        export(export_model, a.tokenizer, run_dir / "export", module.objective)
        metrics["export/kind"] = kind
    write_metrics(run_dir, metrics)
    if cfg.export:
        from hydra.core.hydra_config import HydraConfig

        from transferlab.report.card import model_card

        objective = module.objective
        overrides = list(HydraConfig.get().overrides.task)
        card = model_card(
            cfg,
            metrics,
            a.summary,
            overrides,
            objective.auto_class,
            objective.pipeline_tag,
            artifacts=module.artifacts,
            usage=objective.usage,
        )
        (run_dir / "export" / "README.md").write_text(card, encoding="utf-8")
    shown = {k: round(float(v), 4) for k, v in metrics.items() if k.startswith("test/")}
    console.print(f"[bold]test[/bold] {shown}  fit {metrics['time/fit_s']:.1f}s", soft_wrap=True)
    console.print(f"[bold]run dir[/bold] {run_dir}", soft_wrap=True)
    # The sweeper optimises what picks the best checkpoint (hparams_search/optuna.yaml's direction must match).
    key, _ = monitored(cfg, cfg.callbacks.checkpoint)
    value = metrics.get("val/best_" + key.removeprefix("val/"), metrics.get(key))  # the tested checkpoint's score
    return float(value) if value is not None else None
