"""Seeded, stratified index selection: carving missing splits and data.train_fraction.

Indices are numpy arrays, not Python lists: a text corpus has millions of rows, and every process of a run (the
training one too) carves its splits.
"""

from typing import Optional, Sequence, Tuple

import numpy as np


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
    if len(taken) > size:
        taken = rng.choice(taken, size, replace=False)
    elif len(taken) < size:
        taken = np.concatenate([taken, rng.choice(rest, size - len(taken), replace=False)])
    return np.sort(taken)
