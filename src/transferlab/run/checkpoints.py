"""Checkpoint files: written atomically and kept current on a stop (reading and checking one: preflight.py).

- Checkpoints go to a temp file beside the target and are renamed over it: a kill mid-write leaves the previous
  last.ckpt whole.
- last.ckpt also holds the final state of a finished fit, so resume=auto on a finished run trains nothing more.
"""

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from transferlab.cache import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save through cache.atomic_file: a temp file beside the target, fsync, then renamed over it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_file(Path(path)) as f:  # a kill mid-write leaves the previous file whole
            torch.save(checkpoint, f)


class LastCheckpoint(pl.Callback):
    """Keep last.ckpt the latest training state: on SIGTERM (Lightning raises SIGTERMException once the batch is
    done) and at the end of fit when the final step was not saved yet (a max_steps stop mid-epoch)."""

    def __init__(self, path: Path):
        self.path = path
        self.saved_step = None  # the step of the latest save of any checkpoint in this fit

    def _save(self, trainer):
        trainer.save_checkpoint(self.path, weights_only=False)  # the full training state

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.saved_step = trainer.global_step

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step != self.saved_step:
            self._save(trainer)

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            self._save(trainer)
        elif isinstance(exception, SIGTERMException):
            self.saved_step = None  # stopped while testing: the training state saved before still stands
