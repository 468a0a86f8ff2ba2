"""The study's "compute paid back" (when_to_use.py): the pre-training run's cost against the fine-tuning time that
scratch needs to reach the pre-trained arm's score, and how many such tasks repay it."""

from __future__ import annotations

import statistics

from transferlab.report.arms import PRETRAINED, SCRATCH, TIME, mean_curve, num, scratch_needs, seed_curves
from transferlab.report.interpolate import tasks_to_repay, value_at

WHAT = {  # interpolate.labels_to_reach's kinds, as the seeds that got them are described
    "reached": "reach it",
    "never": "never reach it within the measured range",
    "at most": "match it at the fewest labels measured",
}


def _time_spread(jobs, axis, x) -> float:
    """2 std across seeds of the fine-tuning fit times at x, the larger of the two arms': a time saved below it is
    noise (every fine-tuning job runs the same steps, so fit time barely depends on the labels)."""
    stds = []
    for arm in (SCRATCH, PRETRAINED):
        times = [y for points in seed_curves(jobs, arm, TIME, axis).values() for lx, y in points if lx == x]
        stds.append(statistics.stdev(times) if len(times) > 1 else 0.0)
    return 2 * max(stds)


def payback(jobs, metric, axis, fmt, pretrain) -> list[str]:
    head = "**Compute paid back:** "
    if pretrain is None:
        return [
            "",
            head + "not computed: no pre-training run beside the sweep (pretrain/metrics.json; a study "
            "from --source has none).",
        ]
    path, pm = pretrain
    cost = pm.get(TIME)
    if not num(cost):
        return ["", head + f"not computed: {path} records no {TIME}."]
    needs = scratch_needs(jobs, metric, axis)  # the labels-saved table's per-seed figures: one number in both
    scratch_time = mean_curve(seed_curves(jobs, SCRATCH, TIME, axis))
    pre_time = dict(mean_curve(seed_curves(jobs, PRETRAINED, TIME, axis)))
    if not (needs and scratch_time and pre_time):
        return ["", head + f"not computed: the sweep lacks scratch or pre-trained fine-tuning runs with {TIME}."]
    flops = ""
    if all(num(pm.get(k)) for k in ("params/total", "throughput/tokens_per_sec")):
        tokens = pm["throughput/tokens_per_sec"] * cost
        n = pm["params/total"]
        flops = f", ≈ {6 * n * tokens:.2g} FLOPs (6 × {n:,.0f} parameters × {tokens:.2g} tokens)"
    lines = ["", f"{head}pre-training took {cost:.0f} s of fit{flops}.", ""]
    for x, (target, results) in needs.items():
        took = pre_time.get(x)
        if took is None:
            continue
        lead = f"- With {fmt(x)}: "
        kinds = [kind for kind, _ in results]
        if set(kinds) == {"never"}:
            lines.append(
                f"{lead}scratch does not reach {target:.4f} within the measured range, so no measured amount "
                "of fine-tuning buys what pre-training gives; it pays back in labels, not time."
            )
        elif set(kinds) == {"at most"}:
            lines.append(f"{lead}scratch matches it at the fewest labels measured: pre-training saves nothing here.")
        elif len(set(kinds)) > 1:
            counts = ", ".join(f"{kinds.count(k)} of {len(kinds)} seeds {WHAT[k]}" for k in WHAT if k in kinds)
            lines.append(f"{lead}the seeds disagree ({counts}): no fine-tuning time to compare.")
        else:
            needed = statistics.fmean(n for _, n in results)
            spent = value_at(scratch_time, needed)
            spread = _time_spread(jobs, axis, x)
            tasks = tasks_to_repay(cost, spent, took) if spent - took > spread else None
            saved = (
                f"{spent - took:.1f} s saved per task: {tasks} such fine-tuning tasks repay the pre-training"
                if tasks
                else "no fine-tuning time is saved beyond the seeds' spread of fit times "
                f"(2 std: {spread:.1f} s): it pays back in labels, never in compute"
            )
            lines.append(
                f"{lead}scratch needs ≈{fmt(needed)} and ≈{spent:.1f} s of fine-tuning, pre-trained "
                f"fine-tuning {took:.1f} s; {saved}."
            )
    return lines
