"""Callbacks built from cfg.callbacks, plus the meters that feed metrics.json and the resume/stop helpers."""

import time
from pathlib import Path

import lightning.pytorch as pl


class Throughput(pl.Callback):
    """Tokens seen per second of fit time (non-pad tokens: attention_mask when present, else the block)."""

    def __init__(self):
        self.tokens, self.fit_s, self._start = 0, 0.0, None

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        mask = batch.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()

    def on_train_end(self, trainer, pl_module):
        self.fit_s = time.perf_counter() - self._start

    def metrics(self, world_size: int) -> dict:
        rate = self.tokens * world_size / self.fit_s if self.fit_s else 0.0
        return {"throughput/tokens_per_sec": round(rate, 1), "time/fit_s": round(self.fit_s, 3)}


class LastValidation(pl.Callback):
    """The global step of the latest validation: a run validates its final weights unless that just happened."""

    def __init__(self):
        self.step = None

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.step = trainer.global_step


def build_callbacks(cfg, run_dir: Path) -> list:
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar

    from transferlab.reliability import ResumeState, StopOnSignal

    cb_cfg = cfg.callbacks
    callbacks = [Throughput(), LastValidation(), ResumeState(), StopOnSignal(run_dir / "checkpoints" / "last.ckpt")]
    ck = cb_cfg.checkpoint
    if ck.enabled:
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints", filename="best-{epoch}-{step}", monitor=ck.monitor, mode=ck.mode,
                save_top_k=ck.save_top_k if ck.monitor else 0, save_last=True, auto_insert_metric_name=False,
                every_n_train_steps=ck.every_n_train_steps,
            )
        )
    if cb_cfg.lr_monitor and (cfg.logger.csv or cfg.logger.wandb or cfg.logger.tensorboard):
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cb_cfg.progress_bar:
        # tqdm redrawing every 10 steps: a live-refresh thread (rich) steals a core from the 2 BLAS threads on CPU.
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    if cb_cfg.early_stopping is not None:
        es = cb_cfg.early_stopping
        callbacks.append(EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience))
    return callbacks
