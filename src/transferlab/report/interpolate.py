"""Curve arithmetic for the study's "When to use each" (when_to_use.py): a curve is [(labels, value), ...] in
ascending labels, linear in the value on log labels between measured points, and never extrapolated beyond them."""

from __future__ import annotations

import math


def log_interp_x(x0: float, y0: float, x1: float, y1: float, target: float) -> float:
    """Where the segment (x0, y0)-(x1, y1), linear in y on log x, reaches `target`."""
    t = (target - y0) / (y1 - y0)
    return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))


def labels_to_reach(curve: list, target: float) -> tuple[str, float]:
    """The fewest labels at which `curve` [(x, y), ...] reaches `target`: ("reached", x); ("at most", x0) when its
    first point already does (nothing below the range is known); ("never", x_max) when no measured point does."""
    if curve[0][1] >= target:
        return "at most", curve[0][0]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y1 >= target:  # y0 < target: every earlier point fell short
            return "reached", x1 if x1 == x0 else log_interp_x(x0, y0, x1, y1, target)
    return "never", curve[-1][0]


def value_at(curve: list, x: float) -> float | None:
    """The curve's value at x (linear on log x between measured points); None outside the measured range."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * math.log(x / x0) / math.log(x1 / x0)
    return curve[0][1] if curve and x == curve[0][0] else None


def crossings(diffs: list) -> list[tuple[float, bool, int]]:
    """Where d [(x, d), ...] changes sign: (x, whether d is positive after it, index of the point before it)."""
    return [
        (log_interp_x(x0, d0, x1, d1, 0.0), d1 > 0, i)
        for i, ((x0, d0), (x1, d1)) in enumerate(zip(diffs, diffs[1:]))
        if d0 * d1 < 0 and x1 > x0
    ]


def tasks_to_repay(pretrain_cost: float, scratch_cost: float, pretrained_cost: float) -> int | None:
    """How many fine-tuning tasks, each saving scratch_cost - pretrained_cost, repay the pre-training; None: never."""
    saved = scratch_cost - pretrained_cost
    return math.ceil(pretrain_cost / saved) if saved > 0 else None
