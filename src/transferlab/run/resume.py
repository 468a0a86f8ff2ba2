"""Resuming a run exactly: which checkpoint to continue, and what Lightning leaves out of a checkpoint.

Lightning restores the model, optimizer, scheduler, step and loop counters, but not the RNG states nor where the
data loader stood inside an epoch. ResumeState saves both, so a resumed run trains on the same batches with the
same dropout as the run it continues.
"""

import random
import shutil
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

# ResumeState makes the loader resume mid-epoch, which Lightning cannot see (it would warn on every such resume).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


def rng_state() -> dict:
    """The RNG states training draws from, as tensors and plain values (a weights_only load accepts them)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, key.tolist(), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
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


def _stream(trainer):
    """The training stream (data.streaming=true, data/streaming.py), or None."""
    datamodule = trainer.datamodule
    train = datamodule.datasets.get("train") if datamodule is not None else None
    return train if hasattr(train, "record") else None


def _gathered(trainer, positions: dict) -> dict:
    """Every rank's stream positions (each rank reads its own shares of the stream)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return positions
    everyone = [None] * trainer.world_size
    torch.distributed.all_gather_object(everyone, positions)
    return {share: position for ranks in everyone for share, position in ranks.items()}


class ResumeState(pl.Callback):
    """Saves RNG states and the epoch position in every checkpoint; a resumed fit picks them up where it left off.
    A training stream's position (every rank's) is saved too, and restored before its loader starts reading.

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
            # whose state optimizer_states holds: a resume with another optimizer.name is refused (run/preflight.py)
            "optimizer": str(pl_module.optimizer_cfg.name),
        }
        stream = _stream(trainer)
        if stream is not None:
            state = stream.state(trainer.datamodule.cfg.num_workers, trainer.world_size)
            checkpoint["transferlab"]["stream"] = {**state, "positions": _gathered(trainer, state["positions"])}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if isinstance(batch, dict) and "stream" in batch:
            _stream(trainer).record(batch)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self._pending = checkpoint.get("transferlab")
        stream = _stream(trainer)
        if stream is not None and self._pending and "stream" in self._pending:
            # now, before the loader's workers start and copy the stream
            stream.restore(self._pending["stream"], trainer.datamodule.cfg.num_workers, trainer.world_size)

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


def adopt_tokenizer(ckpt: str, run_dir: Path) -> None:
    """resume=PATH into a new run dir: reuse the tokenizer of the run that wrote the checkpoint. Training one anew
    can give another vocabulary (tokenizers' WordPiece training is not deterministic) that the weights don't fit."""
    source = Path(ckpt).resolve().parent.parent / "tokenizer"
    target = run_dir / "tokenizer"
    if source.is_dir() and not target.exists():
        shutil.copytree(source, target)
