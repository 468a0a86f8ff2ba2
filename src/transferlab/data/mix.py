"""data=mix in training: each source's train split prepared on its own, drawn by weight; validation and test as one.

Each source's train split is prepared as that data config alone would prepare it (its own entry in the prepared-data
cache: a later run, or a run on that source alone, finds it). `Mixed` puts them side by side and `MixSampler` draws
an epoch from them: as many examples as the sources hold together, each from source s with probability
weight_s / sum(weights), a source's examples in a fresh random order (again, when it is drawn more often than it has
examples; a random subset of them, when less). The draw depends only on (seed, epoch), like every other batch
sampler (data/buckets.py), so a resumed run replays the epoch and skips what it trained on; length bucketing
(rows) works within the drawn order as before. Validation and test are the sources' splits as one split (data/
sources.py's Union), prepared and scored as one: metrics on the union, its rows per source in metrics.json.

What each source gave training (examples and tokens) is counted per batch as it is trained on and kept in the
checkpoint (the datamodule's state), so metrics.json's data/drawn_<source>_{examples,tokens} survive a resume.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from transferlab.cache import cache_key
from transferlab.data.buckets import BatchSampler, carry_seed
from transferlab.data.module import TransferDataModule, bucketed
from transferlab.errors import TransferlabError

DRAWN = "mix_drawn"  # the batch key carrying its per-source counts from the loader to the datamodule (then dropped)
CHUNK = 1 << 20  # sources drawn a million at a time: one byte a draw, not rng.choice's eight


class Mixed(Dataset):
    """The sources' prepared train splits one after another: item i is item i - starts[s] of source s."""

    def __init__(
        self, parts: list, labels: list, weights: list, tokens: list | None = None, counts: dict | None = None
    ):
        self.parts, self.labels, self.weights = parts, labels, weights
        self.sizes = np.array([len(p) for p in parts], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        # tokens per example: a row's length, or a packed block's width
        self.tokens = tokens or [p.lengths if p.lengths is not None else p.blocks.shape[1] for p in parts]
        self.counts = counts or {}  # {split: {label: examples (train) or rows (validation, test)}}
        lengths = [p.lengths for p in parts]
        self.lengths = None if any(x is None for x in lengths) else np.concatenate(lengths)
        self.fingerprint = cache_key([getattr(p, "fingerprint", None) for p in parts], labels, weights)
        collate = getattr(parts[0], "collate", None)  # cached features batch themselves (data/features.py)
        if collate is not None:
            self.collate = collate

    def over(self, parts: list) -> "Mixed":
        """The same mix over other versions of its parts (a probe's cached features of each)."""
        return Mixed(parts, self.labels, self.weights, self.tokens, self.counts)

    def __len__(self):
        return int(self.starts[-1])

    def _item(self, source: int, i: int):
        item = self.parts[source][int(i - self.starts[source])]
        return {**item, "id": int(i)} if isinstance(item, dict) and "id" in item else item

    def __getitem__(self, i):
        return self._item(int(np.searchsorted(self.starts, i, side="right")) - 1, i)

    def __getitems__(self, indices):
        index = np.asarray(indices, dtype=np.int64)
        source = np.searchsorted(self.starts, index, side="right") - 1
        batch = carry_seed([self._item(s, i) for s, i in zip(source, index)], indices)
        drawn = np.zeros((len(self.parts), 2), dtype=np.int64)
        for s in np.unique(source):
            local = index[source == s] - self.starts[s]
            tokens = self.tokens[s]
            drawn[s] = len(local), len(local) * tokens if np.isscalar(tokens) else int(tokens[local].sum())
        batch.drawn = drawn
        return batch


class MixSampler(BatchSampler):
    """Training batches of a Mixed split, drawn by weight (the module docstring); every rank draws the same epoch and
    takes its share of the batches, as BatchSampler does."""

    def __init__(
        self,
        sizes,
        weights,
        lengths,
        batch_size: int,
        bucket: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = False,
        window: int = 50,
    ):
        super().__init__(
            lengths,
            batch_size,
            shuffle=True,
            bucket=bucket,
            window=window,
            seed=seed,
            rank=rank,
            world=world,
            pad_ranks=True,
            drop_last=drop_last,
        )
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.shares = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))

    def _order(self, rng, n: int) -> np.ndarray:
        source = np.empty(n, dtype=np.uint16)
        for i in range(0, n, CHUNK):
            source[i : i + CHUNK] = rng.choice(len(self.sizes), size=min(CHUNK, n - i), p=self.shares)
        small = np.uint32 if n < 2**32 else np.int64
        order = np.empty(n, dtype=small)
        for s, (start, size) in enumerate(zip(self.starts, self.sizes)):
            slots = np.flatnonzero(source == s)
            rounds, drawn = [], 0
            while drawn < len(slots):  # a fresh order of the source each time it runs out
                round_ = np.arange(start, start + size, dtype=small)
                rng.shuffle(round_)
                rounds.append(round_)
                drawn += size
            if rounds:
                order[slots] = np.concatenate(rounds)[: len(slots)]
        return order


class Counting:
    """A collator that also puts its batch's per-source counts (Mixed.__getitems__) in the batch, under DRAWN."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, examples):
        batch = self.collate(examples)
        batch[DRAWN] = torch.from_numpy(examples.drawn)
        return batch


def prepare_mix(raw: dict, objective) -> dict:
    """Every split of a mix as the objective prepares it: train per source (a Mixed), the others as one split."""
    parts, kept, totals = [], objective.stats, {}
    for source, ds in raw["train"].parts:
        objective.stats = {}  # what preparing this part found, added up over the parts
        with source.named():
            part = objective.prepare("train", ds)
            if len(part) == 0:
                raise TransferlabError("its train split prepared to no examples; give it some text, or drop it")
        parts.append(part)
        for key, n in objective.stats.items():
            totals[key] = totals.get(key, 0) + n
    objective.stats = {**kept, **totals}
    sources = [source for source, _ in raw["train"].parts]
    labels = [s.label for s in sources]
    counts = {"train": {label: len(p) for label, p in zip(labels, parts)}}
    out = {"train": Mixed(parts, labels, [s.weight for s in sources], counts=counts)}
    for split, union in raw.items():
        if split != "train":
            out[split] = objective.prepare(split, union)
            counts[split] = union.counts()
    return out


class MixDataModule(TransferDataModule):
    """TransferDataModule whose training loader draws from a Mixed split by weight and counts what it draws."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drawn = np.zeros((len(self.datasets["train"].parts), 2), dtype=np.int64)  # [source, (examples, tokens)]

    def _sampler(self, ds, batch_size: int, train: bool, rank: int, world: int):
        if not train:
            return super()._sampler(ds, batch_size, train, rank, world)
        lengths = ds.lengths if ds.lengths is not None else np.zeros(len(ds), dtype=np.uint8)
        bucket = bucketed(self.cfg, self.objective, True) and ds.lengths is not None  # rows: as without a mix
        return MixSampler(
            ds.sizes,
            ds.weights,
            lengths,
            batch_size,
            bucket=bucket,
            seed=self.seed,
            rank=rank,
            world=world,
            drop_last=self.static_shapes and ds.lengths is None,
            window=self.cfg.bucket_window,
        )

    def _collate(self, ds, collate, train: bool):
        inner = super()._collate(ds, collate, train)
        return Counting(inner) if train else inner

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, dict) and DRAWN in batch:  # a training batch, about to be trained on
            self.drawn += batch.pop(DRAWN).numpy()
        return batch

    def _world(self) -> tuple:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)

    def state_dict(self) -> dict:
        """Every rank's counts (each draws its own batches), as plain lists: a weights_only load reads them."""
        rank, world = self._world()
        everyone = [self.drawn.tolist()]
        if world > 1 and torch.distributed.is_initialized():
            everyone = [None] * world
            torch.distributed.all_gather_object(everyone, self.drawn.tolist())
        return {"drawn": everyone}

    def load_state_dict(self, state: dict) -> None:
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return  # testing the best checkpoint: the counts are the fit's, not that checkpoint's
        rank, world = self._world()
        drawn = np.asarray(state["drawn"], dtype=np.int64)
        if len(drawn) == world:
            self.drawn = drawn[rank].copy()
        else:  # resumed on another number of processes: rank 0 carries the total
            self.drawn = drawn.sum(axis=0) if rank == 0 else np.zeros_like(drawn[0])

    def stats(self) -> dict:
        """metrics.json's data/<key>s: each source's train examples, validation/test rows and draws (summed over
        ranks: every rank calls this)."""
        total = torch.from_numpy(self.drawn.copy())
        if self._world()[1] > 1 and torch.distributed.is_initialized():
            torch.distributed.all_reduce(total)
        train = self.datasets["train"]
        out = {}
        for split, per in train.counts.items():
            unit = "examples" if split == "train" else "rows"
            out.update({f"{split}_{label}_{unit}": n for label, n in per.items()})
        for label, (examples, tokens) in zip(train.labels, total.tolist()):
            out.update({f"drawn_{label}_examples": examples, f"drawn_{label}_tokens": tokens})
        return out

    def summary(self) -> str:
        train = self.datasets["train"]
        total = sum(train.weights)
        return "mix: " + ", ".join(
            f"{label} (weight {w:g}, {w / total:.0%} of draws) {n:,} train examples"
            for label, w, n in zip(train.labels, train.weights, train.sizes)
        )
