"""Seeded, stratified index selection: carving missing splits, data.train_fraction and the size limits.

A cut split is `Deferred`: named (fingerprinted) from its parent and the cut's settings before any index is drawn, so
a run whose prepared splits are all in the cache reads no line of text to cut them. Indices, when drawn, are numpy
arrays, not Python lists: a text corpus has millions of rows.
"""

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from transferlab.cache import cache_key
from transferlab.data.deferred import Deferred
from transferlab.errors import TransferlabError


def _groups(labels: Optional[Sequence], n: int):
    """Each label's row indices, ascending, labels in sorted order (one group of all rows without labels)."""
    if labels is None:
        yield np.arange(n, dtype=np.uint32 if n < 2**32 else np.int64)  # 4 bytes a row: a text corpus has millions
        return
    keys, inverse = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    yield from np.split(order, np.cumsum(np.bincount(inverse, minlength=len(keys)))[:-1])


def stratified_take(labels: Optional[Sequence], n: int, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split range(n) into sorted (taken, rest) with `fraction` taken, per label when labels are given.

    Every label keeps at least one example in `taken`, so a 1% slice still sees every class.
    """
    rng = np.random.default_rng(seed)
    taken, rest = [], []
    for idx in _groups(labels, n):
        idx = idx.copy()
        rng.shuffle(idx)
        k = min(len(idx), max(1, int(round(fraction * len(idx)))))
        taken.append(idx[:k])
        rest.append(idx[k:])
    empty = np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(taken or [empty])), np.sort(np.concatenate(rest or [empty]))


def stratified_sample(labels: Optional[Sequence], n: int, size: int, seed: int) -> np.ndarray:
    """Exactly `size` indices of range(n), sorted, stratified by label where labels are given."""
    taken, rest = stratified_take(labels, n, size / n, seed)
    rng = np.random.default_rng(seed + 1)
    if len(taken) > size:  # one per label first (as far as size allows), then at random
        in_taken = np.zeros(n, dtype=bool)
        in_taken[taken] = True
        first = np.array([g[in_taken[g]][0] for g in _groups(labels, n)]) if labels is not None else taken[:0]
        first = rng.choice(first, min(size, len(first)), replace=False)
        others = np.setdiff1d(taken, first)
        taken = np.concatenate([first, rng.choice(others, size - len(first), replace=False)])
    elif len(taken) < size:
        taken = np.concatenate([taken, rng.choice(rest, size - len(taken), replace=False)])
    return np.sort(taken)


def cut(parent, pick: Callable, settings: dict) -> Deferred:
    """The rows `pick(parent)` selects from a split (None: all of them), named from the parent's fingerprint and
    `settings` (which must determine the pick) and selected on first use."""

    def make():
        picked = pick(parent)
        return parent if picked is None else parent.select(picked)

    return Deferred(make, cache_key(parent._fingerprint, settings))


def _column(ds, column: str) -> list:
    """A whole column as a list in one read (iterating a datasets Column decodes Arrow row by row, ~50x slower)."""
    return ds[column][:]


def _strata(ds, field: Optional[str]):
    """Each row's stratum: its value as text; for a list (a multi-label row) its rarest member, so a cut keeps every
    member that is some row's rarest (an empty list is a stratum of its own)."""
    if not field:
        return None
    values = _column(ds, field)
    if not any(isinstance(v, list) for v in values):
        return [str(v) for v in values]
    from collections import Counter

    counts = Counter(str(m) for v in values if isinstance(v, list) for m in v)
    return [
        min((str(m) for m in v), key=lambda m: (counts[m], m), default="") if isinstance(v, list) else str(v)
        for v in values
    ]


def _carve(train, fraction: float, seed: int, stratify: Optional[str], split: str):
    """(held, rest) of train, deferred cuts, `fraction` of it held out for `split`; one draw serves both."""
    drawn = {}

    def part(which: int):
        def pick(ds):
            if "cut" not in drawn:
                drawn["cut"] = stratified_take(_strata(ds, stratify), len(ds), fraction, seed)
            if which and not len(drawn["cut"][1]):
                raise TransferlabError(
                    "data.train has too few examples to carve validation/test splits from; "
                    "give data.validation and data.test files"
                )
            return drawn["cut"][which]

        return pick

    settings = {"cut": "carve", "split": split, "fraction": fraction, "seed": seed, "by": stratify}
    return cut(train, part(0), {**settings, "part": "held"}), cut(train, part(1), {**settings, "part": "rest"})


def carve_splits(raw: dict, data_cfg, stratify: Optional[str]) -> dict:
    """The task's splits: missing validation/test splits carved from train (stratified, fixed seed), validation
    first. Its train split is the pool that data.train_fraction and data.max_train_samples then draw from (size_splits).
    Each cut is Deferred: named now, made only when its rows are read (a cache miss), so a run on prepared data reads
    no line of text to cut them."""
    raw, seed = dict(raw), data_cfg.split_seed
    for split in ("validation", "test"):
        if split not in raw:
            raw[split], raw["train"] = _carve(raw["train"], data_cfg.validation_fraction, seed, stratify, split)
    return raw


def size_splits(raw: dict, data_cfg, stratify: Optional[str]) -> dict:
    """The task's splits cut to size: data.train_fraction, then the size limits."""
    raw, seed = dict(raw), data_cfg.split_seed
    if data_cfg.train_fraction < 1:
        taken = lambda ds, f=data_cfg.train_fraction: stratified_take(_strata(ds, stratify), len(ds), f, seed)[0]  # noqa: E731
        raw["train"] = cut(
            raw["train"],
            taken,
            {"cut": "train_fraction", "fraction": data_cfg.train_fraction, "seed": seed, "by": stratify},
        )
    limits = {
        "train": data_cfg.max_train_samples,
        "validation": data_cfg.max_eval_samples,
        "test": data_cfg.max_eval_samples,
    }
    for split, limit in limits.items():
        if limit is not None:

            def sample(ds, k=limit):
                return stratified_sample(_strata(ds, stratify), len(ds), k, seed) if k < len(ds) else None

            raw[split] = cut(raw[split], sample, {"cut": "limit", "size": limit, "seed": seed, "by": stratify, "v": 2})
    return raw
