"""TransferModule: one LightningModule for every model x objective x freeze combination.

It never branches on the objective's or the policy's name: the objective gives the loss and metrics, the freeze
policy gives the trainable parameters, their learning rates and which modules stay in eval mode.
"""

import math

import lightning.pytorch as pl
import torch

from transferlab.errors import TransferlabError


def schedule(name: str, warmup: int, total: int):
    """LR multiplier as a function of the optimizer step: linear warm-up, then linear/cosine decay or constant."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return max(0.0, 1.0 - progress) if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class TransferModule(pl.LightningModule):
    def __init__(self, model, objective, policy, optimizer_cfg, scheduler_cfg, on_nan: str = "stop"):
        super().__init__()
        self.model, self.objective, self.policy = model, objective, policy
        self.optimizer_cfg, self.scheduler_cfg, self.on_nan = optimizer_cfg, scheduler_cfg, on_nan
        self.skipped_batches = 0

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:  # Lightning calls train() at every epoch start; frozen parts must stay in eval (no dropout)
            self.policy.set_train_mode(self.model)
        return self

    def _step(self, batch, stage: str) -> torch.Tensor:
        loss = self.objective.step(self.model, batch, stage)
        n = batch["input_ids"].size(0)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
        for name, metric in self.objective.metrics[stage].items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=n)
        return loss

    def _loss_is_finite(self, loss: torch.Tensor) -> bool:
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:
            # Every rank must take the same path (stop, skip or step), or DDP waits forever on the others.
            finite = not self.trainer.strategy.reduce_boolean_decision(not finite, all=False)
        return finite

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if not self._loss_is_finite(loss):
            if self.on_nan == "stop":
                raise TransferlabError(
                    f"loss is {loss.item()} at step {self.global_step}; lower optimizer.lr, check the data, "
                    "or set on_nan=skip to skip such batches"
                )
            self.skipped_batches += 1
            self.log("train/skipped_batches", float(self.skipped_batches), on_step=True, on_epoch=False)
            return None  # Lightning skips backward and the optimizer step for this batch
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        opt_cfg, sched_cfg = self.optimizer_cfg, self.scheduler_cfg
        groups = self.policy.param_groups(self.model, opt_cfg.lr, opt_cfg.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps)
        total = int(self.trainer.estimated_stepping_batches)
        batches = len(self.trainer.datamodule.train_dataloader()) if self.trainer.datamodule else total
        steps_per_epoch = max(1, batches // self.trainer.accumulate_grad_batches)
        base = schedule(sched_cfg.name, int(sched_cfg.warmup_ratio * total), total)
        multipliers = self.policy.lr_multipliers(steps_per_epoch) or [None] * len(groups)
        lambdas = [(lambda s, m=m: base(s) * m(s)) if m else base for m in multipliers]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
