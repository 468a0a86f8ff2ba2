"""TransferModule: one LightningModule for every model x objective x freeze combination.

It never branches on the objective's or the policy's name: the objective gives the loss, the per-batch metrics and
(where it scores whole eval sets) predictions and their evaluation; the freeze policy gives the trainable
parameters, their learning rates and which modules stay in eval mode.
"""

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision

from transferlab.errors import TransferlabError
from transferlab.objectives.metrics import WeightedMean
from transferlab.run.optim import build_optimizer, build_scheduler


def _nonfinite(loss) -> bool:
    """A loss tensor that is nan or inf (reading it waits for the device)."""
    return loss is not None and not bool(torch.isfinite(loss))


class TransferModule(pl.LightningModule):
    def __init__(
        self,
        model,
        objective,
        policy,
        optimizer_cfg,
        scheduler_cfg,
        on_nan: str = "stop",
        predictions_dir=None,
        artifacts_dir=None,
    ):
        super().__init__()
        self.predictions_dir = (
            predictions_dir  # where the objective's written rows go (<run>/predictions); None: nowhere
        )
        self.artifacts_dir = artifacts_dir  # where its eval-set files go (the run dir); None: nowhere
        self.artifacts: dict = {}  # file name -> the split it was last written from (the model card says)
        self.model, self.objective, self.policy = model, objective, policy
        self.metrics = objective.metrics  # a submodule: the metric states move to the model's device
        # Eval losses as metrics, not self.log(sync_dist=True): Lightning's batch-size-weighted mean syncs the example
        # count as an integer mean, which truncates (37 examples over 2 ranks count as 36) when ranks hold uneven
        # shares, as eval shards do. A metric's states are summed across ranks instead: exact.
        self.eval_losses = torch.nn.ModuleDict({stage: WeightedMean() for stage in ("val", "test")})
        self._predictions: list = []  # this rank's predict() records of the eval set being run
        self.optimizer_cfg, self.scheduler_cfg, self.on_nan = optimizer_cfg, scheduler_cfg, on_nan
        self.skipped_batches = 0
        self._step_loss = None  # this optimizer step's loss (summed over accumulated batches), on the device
        self._total_steps = 0  # the run's optimizer steps, as configure_optimizers estimates them

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:  # frozen parts stay in eval (no dropout), whoever calls train()
            self.policy.set_train_mode(self.model)
        return self

    def on_fit_start(self):
        # Lightning keeps each module's mode as it finds it (and restores it after every validation), and transformers
        # returns from_pretrained models in eval mode: without this, fine-tuning a pre-trained model runs without
        # dropout, silently.
        self.train()

    def _step(self, batch, stage: str) -> torch.Tensor:
        loss = self.objective.step(self.model, batch, stage)
        n = batch["n_rows"]
        if stage == "train":
            # Per step only every log_every_n_steps (what the loggers keep anyway): self.log costs ~0.1 ms a call.
            # The train metrics accumulate every step and are logged at the epoch's end.
            if self.global_step % self.trainer.log_every_n_steps == 0:
                self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
            return loss
        self.eval_losses[stage].update(loss.detach(), n)
        self.log(f"{stage}/loss", self.eval_losses[stage], on_epoch=True, prog_bar=True, batch_size=n)
        for name, metric in self.metrics[stage].items():
            self.log(f"{stage}/{name}", metric, on_epoch=True, prog_bar=True, batch_size=n)
        records = self.objective.predict(self.model, batch)
        if records is not None:
            self._predictions.extend(records)
        return loss

    def _evaluate(self, stage: str) -> None:
        """The objective's whole-set metrics: records gathered from every rank, each example id once."""
        records, self._predictions = self._predictions, []
        if self.trainer.sanity_checking:  # a few batches only: whole-set scores would mean nothing
            return
        if self.trainer.world_size > 1:
            import torch.distributed as dist

            gathered = [None] * self.trainer.world_size
            dist.all_gather_object(gathered, records)
            records = [r for rank_records in gathered for r in rank_records]
        unique = list({r["id"]: r for r in records}.values())
        files = self.objective.artifacts(stage, unique)  # every rank: it may reduce metric states
        if files and self.artifacts_dir is not None and self.trainer.is_global_zero:
            from transferlab.run.outputs import write_artifacts

            write_artifacts(self.artifacts_dir, files)
            self.artifacts.update({name: "validation" if stage == "val" else stage for name in files})
        if not unique:
            return
        for name, value in self.objective.evaluate(stage, unique).items():
            # Every rank computed the same value from the same records: nothing to reduce.
            self.log(f"{stage}/{name}", float(value), prog_bar=True, sync_dist=False)
        rows = self.objective.written(stage, unique)
        if rows is not None and self.predictions_dir is not None and self.trainer.is_global_zero:
            from transferlab.run.outputs import write_jsonl

            write_jsonl(self.predictions_dir / f"{'validation' if stage == 'val' else stage}.jsonl", rows)

    def on_validation_epoch_start(self):
        self._predictions = []

    def on_validation_epoch_end(self):
        self._evaluate("val")

    def on_test_epoch_start(self):
        self._predictions = []

    def on_test_epoch_end(self):
        self._evaluate("test")

    def on_train_epoch_end(self):
        for name, metric in self.metrics["train"].items():
            self.log(f"train/{name}", metric)  # Lightning computes (across ranks) and resets it

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        # The optimizer step's loss, summed over accumulated batches and kept on the device (detach: no kernel). It
        # is checked once backward is queued (on_before_optimizer_step), so a GPU never idles between the two.
        self._step_loss = loss.detach() if self._step_loss is None else self._step_loss + loss.detach()
        return loss

    def on_before_optimizer_step(self, optimizer):
        loss, self._step_loss = self._step_loss, None
        nonfinite = _nonfinite(loss)  # one host sync per optimizer step
        if self.trainer.world_size > 1:
            # Every rank must take the same path (stop, skip or step), or DDP waits forever on the others.
            nonfinite = self.trainer.strategy.reduce_boolean_decision(nonfinite, all=False)
        if not nonfinite:
            return
        if self.on_nan == "stop":  # before the update: the weights and every checkpoint stay finite
            value = loss.item() if _nonfinite(loss) else float("nan")  # else: another DDP rank saw it
            raise TransferlabError(
                f"loss is {value} at step {self.global_step}; lower optimizer.lr, check the data, "
                "or set on_nan=skip to skip such batches"
            )
        self.skipped_batches += 1
        optimizer.zero_grad(set_to_none=True)  # no gradient, no update (weight decay and moments included)
        self.log("train/skipped_batches", float(self.skipped_batches), on_step=True, on_epoch=False)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # The update is done and its gradients are still there (a policy may read them: peft's AdaLoRA).
        self.policy.after_optimizer_step(self.model, self.global_step, self._total_steps)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _unscaled_gradients(self) -> bool:
        """fp32 or bf16-mixed under the plain plugins: gradients are never loss-scaled (no GradScaler, no sharding)."""
        plugin = self.trainer.precision_plugin
        return type(plugin) is Precision or (type(plugin) is MixedPrecision and plugin.scaler is None)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # Lightning's mixed-precision plugin refuses to clip any fused optimizer, as if a GradScaler had to unscale
        # first; under bf16-mixed there is none, so the gradients are clipped as they are.
        plugin = self.trainer.precision_plugin
        if gradient_clip_val and type(plugin) is MixedPrecision and plugin.scaler is None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self):
        from lightning.fabric.utilities.data import has_len

        opt_cfg, sched_cfg = self.optimizer_cfg, self.scheduler_cfg
        total = self._total_steps = int(self.trainer.estimated_stepping_batches)
        loader = self.trainer.datamodule.train_dataloader() if self.trainer.datamodule else None
        batches = (
            len(loader) if loader is not None and has_len(loader) else total
        )  # a stream: one epoch, max_steps long
        steps_per_epoch = max(1, batches // self.trainer.accumulate_grad_batches)
        groups = self.policy.param_groups(self.model, opt_cfg.lr, opt_cfg.weight_decay, steps_per_epoch)
        # fused (AdamW): one kernel for all parameters. (fused=False would not mean torch's default: it turns foreach
        # off too, and a loop of ~10 kernels per parameter tensor leaves a GPU idle.)
        fused = True if self._unscaled_gradients() else None
        optimizer = build_optimizer(groups, opt_cfg, fused)
        scheduler = build_scheduler(optimizer, groups, sched_cfg, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
