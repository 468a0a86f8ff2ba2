"""A user's callback, as callbacks.extra names it (tests/test_ecosystem.py): records the hooks it sees to a JSONL
file, with the callbacks in the order the trainer runs them."""

import json

import lightning.pytorch as pl


class HookRecorder(pl.Callback):
    def __init__(self, path: str, label: str = "recorder"):
        self.path, self.label = path, label

    def _record(self, hook: str, trainer, **extra) -> None:
        row = {"hook": hook, "label": self.label, "global_step": trainer.global_step, **extra}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def on_fit_start(self, trainer, pl_module):
        self._record("on_fit_start", trainer, callbacks=[type(c).__name__ for c in trainer.callbacks])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # Throughput (transferlab's) has counted this batch already when a user's callback runs after it
        throughput = next(c for c in trainer.callbacks if type(c).__name__ == "Throughput")
        self._record("on_train_batch_end", trainer, tokens_counted=int(throughput.tokens))

    def on_fit_end(self, trainer, pl_module):
        self._record("on_fit_end", trainer, val_loss=float(trainer.callback_metrics["val/loss"]))
