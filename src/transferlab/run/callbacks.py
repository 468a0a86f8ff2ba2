"""Callbacks built from cfg.callbacks, plus the meters that feed metrics.json and the resume/stop helpers."""

import time
from pathlib import Path

import lightning.pytorch as pl

from transferlab.objectives import monitored


class Throughput(pl.Callback):
    """Tokens seen per second of fit time (what the objective's collator counts: non-pad input tokens)."""

    def __init__(self):
        self.tokens, self.fit_s, self._start = 0, 0.0, None

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.tokens += batch["n_tokens"]  # counted by the collator on the CPU: nothing waits for the device

    def on_train_end(self, trainer, pl_module):
        self.fit_s = time.perf_counter() - self._start

    def metrics(self, world_size: int) -> dict:
        rate = int(self.tokens) * world_size / self.fit_s if self.fit_s else 0.0
        return {"throughput/tokens_per_sec": round(rate, 1), "time/fit_s": round(self.fit_s, 3)}


class LastValidation(pl.Callback):
    """Validate the final weights inside fit, where the checkpoint callbacks see the score: a trainer.max_steps stop
    between two validations asks Lightning to stop at that step, which validates it (and so can make it the best
    checkpoint that test reads). `step` is the global step of the latest validation: job.py validates after fit only
    when a run still ended unvalidated (check_val_every_n_epoch skipping the last epoch), unsaved as best."""

    def __init__(self):
        self.step = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.step = trainer.global_step


class EpochCounter(pl.Callback):
    """Keep epochs counted right across a resume, and tell the train batch sampler which epoch starts.

    Lightning only calls set_epoch on a loader's `sampler`, not on a batch sampler. And when a step-bounded run
    (trainer.max_steps set) resumes from a checkpoint saved at an epoch's end, Lightning 2.6 replays that epoch's end
    as an empty epoch: its `processed` count runs one ahead, which shifts set_epoch and stops a run that max_epochs
    bounds one epoch early. At an epoch's start `processed` always equals `completed`; restore that.
    """

    def on_train_epoch_start(self, trainer, pl_module):
        progress = trainer.fit_loop.epoch_progress
        for tracker in (progress.current, progress.total):
            tracker.processed = min(tracker.processed, tracker.completed)
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(trainer.current_epoch)


def build_callbacks(cfg, run_dir: Path, has_loggers: bool) -> list:
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar

    from transferlab.run.checkpoints import LastCheckpoint
    from transferlab.run.resume import ResumeState

    cb_cfg = cfg.callbacks
    callbacks = [Throughput(), LastValidation(), EpochCounter(), ResumeState()]
    ck = cb_cfg.checkpoint
    if ck.enabled:
        checkpoints = run_dir / "checkpoints"
        callbacks.append(LastCheckpoint(checkpoints / "last.ckpt"))
        # At every validation: last.ckpt and the best by the monitored metric.
        metric, mode = monitored(cfg, ck)
        callbacks.append(
            ModelCheckpoint(
                dirpath=checkpoints,
                filename="best-{epoch}-{step}",
                monitor=metric,
                mode=mode,
                save_top_k=ck.save_top_k,
                save_last=True,
                auto_insert_metric_name=False,
                enable_version_counter=False,  # both savers write the one last.ckpt, never last-v1.ckpt
            )
        )
        if ck.every_n_train_steps:
            # Periodic last.ckpt from an unmonitored saver: Lightning defers a monitored callback's periodic saves
            # until the monitored metric exists, so the whole first epoch would go unsaved.
            callbacks.append(
                ModelCheckpoint(
                    dirpath=checkpoints,
                    save_top_k=0,
                    save_last=True,
                    enable_version_counter=False,
                    every_n_train_steps=ck.every_n_train_steps,
                )
            )
    if cb_cfg.lr_monitor and has_loggers:  # loggers live on rank 0 only; the monitor fails without one
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cb_cfg.progress_bar:
        # tqdm redrawing every 10 steps: a live-refresh thread (rich) steals a core from the 2 BLAS threads on CPU.
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    if cb_cfg.early_stopping is not None:
        metric, mode = monitored(cfg, cb_cfg.early_stopping, "callbacks.early_stopping")
        # Checked after each validation only: Lightning would also check at a train epoch's end when validation runs
        # once per epoch, and fail there if max_steps ended the epoch before its validation.
        callbacks.append(
            EarlyStopping(
                monitor=metric, mode=mode, patience=cb_cfg.early_stopping.patience, check_on_train_epoch_end=False
            )
        )
    return callbacks + _extra_callbacks(cb_cfg.get("extra") or [])


def _extra_callbacks(entries) -> list:
    """The user's callbacks.extra, built by Hydra, after transferlab's own: their hooks run after ours (Lightning
    still moves every ModelCheckpoint last, so a checkpoint holds what all other callbacks did)."""
    from hydra.utils import instantiate

    from transferlab.errors import TransferlabError

    built = []
    for i, entry in enumerate(entries):
        try:
            callback = instantiate(entry)
        except Exception as e:  # Hydra's message spans lines: the call, then the cause
            cause = " ".join(str(e.__cause__ or e).split())
            raise TransferlabError(
                f"callbacks.extra[{i}]: {entry._target_}(...) failed ({cause}); check its arguments"
            ) from e
        if not isinstance(callback, pl.Callback):
            raise TransferlabError(
                f"callbacks.extra[{i}]._target_={entry._target_} made a {type(callback).__name__}, not a "
                "lightning Callback; subclass lightning.pytorch.Callback"
            )
        built.append(callback)
    return built
