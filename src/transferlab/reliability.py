"""Faults and resume: atomic checkpoints, what Lightning leaves out of a checkpoint, and a clean stop on a signal.

- Checkpoints go to a temp file beside the target and are renamed over it: a kill mid-write leaves the previous
  last.ckpt whole.
- Lightning restores the model, optimizer, scheduler, step and loop counters, but not the RNG states nor where the
  data loader stood inside an epoch. ResumeState saves both, so a resumed run trains on the same batches with the
  same dropout as the run it continues.
- SIGTERM (and Ctrl+C, made to act like it) lets the current batch finish, saves last.ckpt and exits with a line
  saying how to resume. Lightning's SIGUSR1 handling (SLURM requeue) is left alone.
- last.ckpt also holds the final state of a finished fit, so resume=auto on a finished run trains nothing more.
"""

import os
import random
import shlex
import shutil
import signal
import warnings
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from transferlab.errors import TransferlabError

# ResumeState makes the loader resume mid-epoch, which Lightning cannot see (it would warn on every such resume).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temp file in the target's dir, fsync, then os.replace over the target (atomic on POSIX)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden, and no .ckpt suffix: never taken for one
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def rng_state() -> dict:
    """The RNG states training draws from, as tensors and plain values (a weights_only load accepts them)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, key.tolist(), pos, has_gauss, gauss], "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _own_generators(trainer) -> None:
    """Each new loader iterator draws a seed from the global torch RNG, and a resumed run builds its iterators at
    other moments than the run it continues: give the fit's loaders their own generator, off the global stream."""
    val = trainer.val_dataloaders
    loaders = [trainer.train_dataloader, *(val if isinstance(val, (list, tuple)) else [val])]
    for loader in loaders:
        if getattr(loader, "generator", 0) is None:
            loader.generator = torch.Generator().manual_seed(torch.initial_seed() % 2**63)


class ResumeState(pl.Callback):
    """Saves RNG states and the epoch position in every checkpoint; a resumed fit picks them up where it left off.

    Under DDP the checkpoint holds rank 0's RNG state (every rank starts from the same seed, too), so only a
    single-process run resumes bit-exactly.
    """

    def __init__(self):
        self._pending = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["transferlab"] = {
            "rng": rng_state(),
            "epoch": trainer.current_epoch,
            # Batches trained on in this epoch: the resumed epoch skips them instead of starting over.
            "batches_done": trainer.fit_loop.epoch_loop.batch_progress.current.processed,
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self._pending = checkpoint.get("transferlab")

    def on_train_start(self, trainer, pl_module):
        _own_generators(trainer)
        state, self._pending = self._pending, None
        if state is None:
            return
        loader = trainer.train_dataloader
        sampler = getattr(loader, "batch_sampler", None)
        mid_epoch = state["epoch"] == trainer.current_epoch and 0 < state["batches_done"] < trainer.num_training_batches
        if mid_epoch and hasattr(sampler, "resume_at"):
            sampler.resume_at(state["epoch"], state["batches_done"])
            if loader.num_workers > 0:
                # Worker processes took their first batches when the iterator was built, before this hook: rebuild it.
                iter(trainer.fit_loop._data_fetcher)
        # Last, after every iterator above drew its seed: from here on the RNG stream is the saved run's.
        set_rng_state(state["rng"])


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


def adopt_tokenizer(ckpt: str, run_dir: Path) -> None:
    """resume=PATH into a new run dir: reuse the tokenizer of the run that wrote the checkpoint. Training one anew
    can give another vocabulary (tokenizers' WordPiece training is not deterministic) that the weights don't fit."""
    source = Path(ckpt).resolve().parent.parent / "tokenizer"
    target = run_dir / "tokenizer"
    if source.is_dir() and not target.exists():
        shutil.copytree(source, target)


def check_checkpoint_fits(module, ckpt: str) -> None:
    """The checkpoint's weights must have this model's names and shapes: say so in one line, not in Lightning's
    hundred-line load_state_dict error."""
    from transferlab.inputs import read_checkpoint

    theirs = read_checkpoint(ckpt)["state_dict"]
    ours = module.state_dict()
    wrong = [f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}" for k, v in ours.items() if k in theirs and theirs[k].shape != v.shape]
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    problems = wrong + [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in extra]
    if problems:
        shown = "; ".join(problems[:2]) + (f"; and {len(problems) - 2} more" if len(problems) > 2 else "")
        raise TransferlabError(
            f"resume={ckpt}: its weights don't fit this model ({shown}); resume with the config of the run that wrote it"
        )


class Interrupted(TransferlabError):
    """The run stopped on a signal after saving last.ckpt; exit status 128 + the signal number, like the shell."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


@contextmanager
def sigint_as_sigterm():
    """During fit, Ctrl+C takes SIGTERM's path (finish the batch, save, exit); a second Ctrl+C stops at once."""
    received = []

    def on_sigint(signum, frame):
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def resume_command(overrides: list, run_dir: Path) -> str:
    """The command that continues this run: the same overrides, this run dir, resume=auto."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.run.dir=", "resume="))]
    return shlex.join(["transferlab-train", *kept, f"hydra.run.dir={run_dir}", "resume=auto"])


def interrupted(signals: list, last: LastCheckpoint | None, overrides: list, run_dir: Path) -> Interrupted:
    signum = signals[0] if signals else signal.SIGTERM
    name = signal.Signals(signum).name
    if last is None:
        return Interrupted(f"interrupted by {name}; nothing saved (callbacks.checkpoint.enabled=false)", signum)
    if last.saved_step is None and not last.path.is_file():
        return Interrupted(f"interrupted by {name} before any checkpoint was saved; start again to train", signum)
    at = f" at step {last.saved_step}" if last.saved_step is not None else ""
    return Interrupted(f"interrupted by {name}{at}; saved {last.path}; resume with: {resume_command(overrides, run_dir)}", signum)
