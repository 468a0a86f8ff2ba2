"""Batch samplers that every train/eval loader uses; they also shard batches across DDP ranks.

Length bucketing (rows of one example each): shuffle the examples, cut them into mega-batches of `window` batches
(data.bucket_window, 50 by default), sort each mega-batch by length, then shuffle the order of the batches. Order is
random, batches are homogeneous, and every example is seen exactly once per epoch.

The order depends only on (seed, epoch), so a run resumed mid-epoch can replay it and skip the batches it already
trained on (resume_at). Each batch also carries the seed of its random draws (MLM's masks), fixed by (seed, epoch,
rank, position in the epoch): a batch gets the same draws in a worker process as in the main one, and after a
resume as before, so resume stays bit-exact with data.num_workers > 0. Evaluation batches take the same draws every
epoch, so validation scores compare across epochs.

Across DDP ranks, training pads the shards with repeated batches: every rank must take the same number of steps, or
the gradient all-reduce waits forever. Evaluation shards examples instead, each exactly once (counts differ by at
most one batch, which is safe: eval logs reduce at the epoch's end, not per step), so per-example scores and means
count no example twice.
"""

import math

import numpy as np
from torch.utils.data import Sampler


class Batch(list):
    """A batch's example indices, or its examples, with the seed of its random draws."""

    seed: int | None = None


def carry_seed(examples: list, indices) -> Batch:
    """The examples fetched for `indices` (a Batch), keeping its seed for the collator (prepared datasets'
    __getitems__, which DataLoader calls with the sampler's batch)."""
    batch = Batch(examples)
    batch.seed = getattr(indices, "seed", None)
    return batch


class BatchSampler(Sampler):
    def __init__(
        self,
        lengths,
        batch_size: int,
        shuffle: bool,
        bucket: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        pad_ranks: bool = True,
        drop_last: bool = False,
        window: int = 50,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.bucket, self.seed = batch_size, shuffle, bucket, seed
        self.window = window  # batches sorted together when bucketing (data.bucket_window)
        # drop_last: no short last batch (one shape for compiled packed blocks; a new random remainder each epoch)
        self.drop_last = drop_last and len(self.lengths) >= batch_size
        self.rank, self.world, self.pad_ranks = rank, world, pad_ranks
        self.epoch = 0
        self.start = 0  # batches of the next iteration to skip (mid-epoch resume), used once

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """The next iteration replays `epoch` from its batch `batches_done` (this rank's count)."""
        self.epoch, self.start = epoch, batches_done

    def _order(self, rng, n: int) -> np.ndarray:
        """The epoch's examples in the order they are drawn (a mix draws by weight instead: data/mix.py)."""
        order = np.arange(n, dtype=np.uint32 if n < 2**32 else np.int64)
        if self.shuffle:
            rng.shuffle(order)  # in place: rng.permutation(n)'s order without its int64 copy (150 MB at 18.7M blocks)
        return order

    def _batches(self):
        """(order, batch numbers): batch b is order[b * batch_size : (b + 1) * batch_size]. Arrays, not lists of
        lists: a corpus of millions of blocks costs 4 bytes per example here, not a Python int each."""
        n = len(self.lengths)
        rng = np.random.default_rng(self.seed + self.epoch)
        order = self._order(rng, n)
        if self.world > 1 and not self.pad_ranks:
            order = order[self.rank :: self.world]  # this rank's examples, each example on exactly one rank
            n = len(order)
        if self.bucket:
            chunk = self.batch_size * self.window
            for i in range(0, n, chunk):
                order[i : i + chunk] = order[i : i + chunk][
                    np.argsort(self.lengths[order[i : i + chunk]], kind="stable")
                ]
        count = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        numbers = rng.permutation(count) if self.shuffle and self.bucket else np.arange(count)
        return order, numbers

    def __iter__(self):
        # A generator: the order is drawn at the first next(), after Lightning has set the epoch and a resumed run
        # its position (the loader's iterator is created earlier, while the optimizer is configured).
        order, numbers = self._batches()
        if self.world > 1 and self.pad_ranks:
            # Every rank takes the same number of batches, or DDP would wait forever on the longer rank.
            per_rank = math.ceil(len(numbers) / self.world)
            numbers = np.concatenate([numbers, numbers[: per_rank * self.world - len(numbers)]])[
                self.rank :: self.world
            ]
        start, self.start = self.start, 0
        epoch = self.epoch if self.shuffle else 0
        for position in range(start, len(numbers)):
            b = numbers[position]
            batch = Batch(order[b * self.batch_size : (b + 1) * self.batch_size].tolist())
            batch.seed = int(
                np.random.SeedSequence([self.seed % 2**32, epoch, self.rank, position]).generate_state(1)[0]
            )
            yield batch

    def __len__(self) -> int:
        if self.pad_ranks:
            batches = (
                len(self.lengths) // self.batch_size
                if self.drop_last
                else math.ceil(len(self.lengths) / self.batch_size)
            )
            return math.ceil(batches / self.world)
        return math.ceil(len(range(self.rank, len(self.lengths), self.world)) / self.batch_size)
