"""The one LightningDataModule: the objective's prepared splits in, DataLoaders out, with its collator per stage."""

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader

from transferlab.data.buckets import BatchSampler
from transferlab.errors import TransferlabError
from transferlab.objectives.base import STAGE_OF_SPLIT


def prepare_splits(raw: dict, objective) -> dict:
    """Every raw split as the objective prepares it (tokenized, packed, windowed or aligned); a mix's train split
    source by source (data/mix.py)."""
    from transferlab.data.union import Union

    if isinstance(raw.get("train"), Union):
        from transferlab.data.mix import prepare_mix

        return prepare_mix(raw, objective)
    return {split: objective.prepare(split, ds) for split, ds in raw.items()}


def bucketed(data_cfg, objective, train: bool) -> bool:
    """Length bucketing of a stage's batches: data.bucket_by_length when set; else evaluation always (sorting only
    speeds it) and training as the objective chooses (Objective.bucket_train)."""
    if data_cfg.bucket_by_length is not None:
        return bool(data_cfg.bucket_by_length)
    return objective.bucket_train if train else True


def eval_batch_size(data_cfg) -> int:
    """data.eval_batch_size, or twice the training batch (no gradients to keep)."""
    return data_cfg.eval_batch_size or 2 * data_cfg.batch_size


class TransferDataModule(pl.LightningDataModule):
    def __init__(self, datasets: dict, objective, data_cfg, seed: int, static_shapes: bool = False):
        super().__init__()
        self.datasets, self.objective, self.cfg, self.seed = datasets, objective, data_cfg, seed
        self.static_shapes = static_shapes  # compile=true: packed training batches all of one shape (drop_last)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.datasets[split]
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        batch_size = self.cfg.batch_size if train else eval_batch_size(self.cfg)
        collate = self.objective.collator(STAGE_OF_SPLIT[split])
        if hasattr(ds, "configure"):  # a stream (data/streaming.py) shards, batches and collates itself
            from transferlab.data.streaming import as_is

            ds.configure(batch_size, collate, train, self.seed, self.cfg.shuffle_buffer, rank, world)
            return DataLoader(
                ds,
                batch_size=None,
                collate_fn=as_is,
                num_workers=self.cfg.num_workers,
                persistent_workers=self.cfg.num_workers > 0,
                pin_memory=self._on_gpu(),
            )
        if not train and len(ds) < world:  # a rank without a batch would never join the epoch-end reductions
            raise TransferlabError(
                f"data.{split} has {len(ds)} examples for {world} processes; give every process at least one"
            )
        return DataLoader(
            ds,
            batch_sampler=self._sampler(ds, batch_size, train, rank, world),
            collate_fn=self._collate(ds, collate, train),
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            pin_memory=self._on_gpu(),
        )

    def _sampler(self, ds, batch_size: int, train: bool, rank: int, world: int) -> BatchSampler:
        lengths = ds.lengths if ds.lengths is not None else np.zeros(len(ds), dtype=np.uint8)  # not a Python list
        return BatchSampler(
            lengths,
            batch_size,
            shuffle=train,
            bucket=bucketed(self.cfg, self.objective, train) and ds.lengths is not None,
            window=self.cfg.bucket_window,
            seed=self.seed,
            rank=rank,
            world=world,
            pad_ranks=train,
            drop_last=train and self.static_shapes and ds.lengths is None,  # lengths None: equal-length packed blocks
        )

    def _collate(self, ds, collate, train: bool):
        """Cached features (data/features.py) batch themselves; tokens as the objective says."""
        return getattr(ds, "collate", None) or collate

    def stats(self) -> dict:
        """What metrics.json keeps of the data besides the objective's stats, as data/<key> (a mix's draws)."""
        return {}

    def summary(self) -> str | None:
        """A line for the run's log, or None."""
        return None

    def _on_gpu(self) -> bool:
        """Pinned host memory lets the copy to a GPU overlap the previous step."""
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("validation", train=False)

    def test_dataloader(self):
        return self._loader("test", train=False)
