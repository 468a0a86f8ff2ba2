"""Seeded, stratified index selection: carving missing splits and data.train_fraction."""

from collections import defaultdict
from typing import List, Optional, Sequence, Tuple

import numpy as np


def stratified_take(labels: Optional[Sequence], n: int, fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """Split range(n) into (taken, rest) with `fraction` taken, per label when labels are given.

    Every label keeps at least one example in `taken`, so a 1% slice still sees every class.
    """
    rng = np.random.default_rng(seed)
    groups = defaultdict(list)
    for i in range(n):
        groups[labels[i] if labels is not None else 0].append(i)
    taken, rest = [], []
    for key in sorted(groups, key=str):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        k = min(len(idx), max(1, int(round(fraction * len(idx)))))
        taken.extend(idx[:k].tolist())
        rest.extend(idx[k:].tolist())
    return sorted(taken), sorted(rest)


def stratified_sample(labels: Optional[Sequence], n: int, size: int, seed: int) -> List[int]:
    """Exactly `size` indices of range(n), stratified by label where labels are given."""
    taken, rest = stratified_take(labels, n, size / n, seed)
    rng = np.random.default_rng(seed + 1)
    if len(taken) > size:
        taken = rng.choice(taken, size, replace=False).tolist()
    elif len(taken) < size:
        taken = taken + rng.choice(rest, size - len(taken), replace=False).tolist()
    return sorted(taken)
