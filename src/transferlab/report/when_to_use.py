"""The Claims' "When to use each": the study's curves (the report's metric against the number of labels, the train
examples a run used: data/train_examples in its metrics.json) read as decisions.

- Labels saved: at each fraction, how many labels scratch fine-tuning needs to match pre-trained fine-tuning's
  score, as a multiplier of the labels the pre-trained arm used (Hernandez et al. 2021, "Scaling Laws for Transfer":
  the effective data transferred), per seed where the seeds pair (mean ± std), "more than all labels" when scratch
  never reaches it inside the measured range.
- Crossovers: the label count where one arm overtakes another (seed-paired mean differences changing sign).
- Compute paid back: the pre-training run's cost against the fine-tuning time it saves per task.

Between measured counts a curve is linear in the metric on log labels; nothing is extrapolated beyond them. The
sentences under the numbers say "within noise" by claims.py's 2-std rule.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from transferlab.report.arms import (
    LABELS,
    PRETRAINED,
    PROBE,
    SCRATCH,
    TFIDF,
    label_axis,
    mean_curve,
    scratch_needs,
    seed_curves,
)
from transferlab.report.claims import margin, separated
from transferlab.report.interpolate import crossings
from transferlab.report.payback import payback

CROSSINGS = (  # (name of a, a, name of b, b): where a - b changes sign as labels grow
    ("fine-tuning", PRETRAINED, "the probe", PROBE),
    ("scratch fine-tuning", SCRATCH, "pre-trained fine-tuning", PRETRAINED),
    ("pre-trained fine-tuning", PRETRAINED, "TF-IDF", TFIDF),
)


def find_pretrain(dirs, out) -> tuple[Path, dict] | None:
    """The pre-training run multirun.sh leaves beside the sweep (<study>/pretrain/metrics.json), if it finished."""
    for base in [Path(out), *map(Path, dirs), *(Path(d).parent for d in dirs)]:
        path = base / "pretrain" / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if metrics.get("status") == "ok":
            return path, metrics
    return None


# ---------------------------------------------------------------- the section
def when_to_use_section(jobs, metric: str, pretrain: tuple[Path, dict] | None) -> list[str]:
    axis, counted = label_axis(jobs)
    fmt = (lambda x: f"{x:,.0f} labels") if counted else (lambda x: f"fraction {x:.3g}")  # noqa: E731
    head = ["", "### When to use each", ""]
    if len(set(axis.values())) < 2:
        counts = ", ".join(sorted({fmt(x) for x in axis.values()})) or "none"
        why = "e.g. data.max_train_samples caps every fraction"
        return head + [f"One label count measured ({counts}; {why}): there is no curve to read."]
    axis_note = (
        f"Labels are the train examples a run used ({LABELS})"
        if counted
        else f"The runs record no {LABELS} (older runs): train fractions stand in for label counts"
    )
    return (
        head
        + [
            f"{axis_note}. Between measured counts a curve is linear in {metric} on log labels; nothing is "
            "extrapolated beyond them. Within noise: the seeds do not separate the arms (2 std of the paired "
            "differences).",
        ]
        + _labels_saved(jobs, metric, axis, fmt)
        + _crossovers(jobs, metric, axis, fmt)
        + payback(jobs, metric, axis, fmt, pretrain)
    )


def _multiplier(results: list) -> str:
    never = [m for kind, m in results if kind == "never"]
    values = [m for _, m in results]
    if never and len(never) == len(results):
        return f"more than all labels (> {min(never):.1f}×; {len(never)} of {len(results)} seeds never reach it)"
    if never:  # the seeds that reach it say how many labels; the others only that it is more than all
        reached = [m for kind, m in results if kind == "reached"]
        got = f"{statistics.fmean(reached):.1f}× in {len(reached)} of {len(results)} seeds" if reached else "–"
        verb = "never reaches" if len(never) == 1 else "never reach"
        return f"{got}; {len(never)} {verb} it (> {min(never):.1f}×)"
    if any(kind == "at most" for kind, _ in results):
        return f"≤ {max(values):.2f}× (scratch matches it at the fewest labels measured)"
    std = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.1f}×{std} (n={len(values)})"


def _labels_saved(jobs, metric, axis, fmt) -> list[str]:
    needs = scratch_needs(jobs, metric, axis)
    head = "**Labels saved** (the effective data transferred, Hernandez et al. 2021): the labels scratch fine-tuning"
    lines = ["", f"{head} needs to match pre-trained fine-tuning's {metric}, as a multiple of the labels it used."]
    if not needs:
        return lines[:1] + ["**Labels saved:** not computed: the sweep lacks scratch or pre-trained fine-tuning runs."]
    table, said = ["", f"| fraction | labels | pre-trained {metric} | scratch needs |", "|---|---|---|---|"], []
    top = max(x for x, _ in mean_curve(seed_curves(jobs, SCRATCH, metric, axis)))
    for f, x in sorted(axis.items(), key=lambda kv: kv[1]):
        if x not in needs:
            continue
        score, reached = needs[x]
        results = [(kind, n / x) for kind, n in reached]
        table.append(f"| {f:g} | {fmt(x)} | {score:.4f} | {_multiplier(results)} |")
        said.append(_saved_sentence(jobs, metric, f, x, score, results, fmt, top))
    return lines + table + [""] + said


def _noise(jobs, metric, a, b, fraction, what: str) -> str:
    m = margin(jobs, a, b, fraction, metric)
    if m is None or separated(m[0], m[1]) is None:
        return " One seed: whether this is noise cannot be told."
    if not separated(m[0], m[1]):
        return f" Within noise: the seeds do not separate {what} here ({100 * m[0]:+.1f} ± {100 * m[1]:.1f} pts)."
    return ""


def _saved_sentence(jobs, metric, fraction, x, score, results, fmt, top) -> str:
    never = sum(kind == "never" for kind, _ in results)
    lead = f"- With {fmt(x)}, pre-trained fine-tuning scores {score:.4f}"
    noise = _noise(jobs, metric, PRETRAINED, SCRATCH, fraction, "pre-trained from scratch fine-tuning")
    if never == len(results):
        return (
            f"{lead}; scratch does not reach it within the measured range (up to {fmt(top)}) in {never} of "
            f"{len(results)} seeds: pre-training is worth more than all the labels measured.{noise}"
        )
    if never:
        reached = [m for kind, m in results if kind == "reached"]
        some = (
            f"needs about {statistics.fmean(reached):.1f}× the labels in {len(reached)} of {len(results)} seeds and "
            if reached
            else ""
        )
        return (
            f"{lead}; scratch {some}does not reach it within the measured range (up to {fmt(top)}) in {never}: "
            f"the seeds disagree on what pre-training is worth here.{noise}"
        )
    mean = statistics.fmean(m for _, m in results)
    if any(kind == "at most" for kind, _ in results):
        return f"{lead}; scratch matches it already at the fewest labels measured: no labels saved.{noise}"
    worth = f"pre-training is worth {mean:.1f}× the labels" if mean >= 1 else "pre-training saves no labels"
    return f"{lead}; scratch needs about {fmt(mean * x)} to match it ({mean:.1f}×): {worth}.{noise}"


def _crossovers(jobs, metric, axis, fmt) -> list[str]:
    lines = ["", "**Crossovers** (seed-paired mean differences changing sign as labels grow):", ""]
    order = sorted(axis, key=axis.get)
    for name_a, a, name_b, b in CROSSINGS:
        measured = [(f, axis[f], m) for f in order if (m := margin(jobs, a, b, f, metric)) is not None]
        pair = f"- {name_a[0].upper()}{name_a[1:]} vs {name_b}: "
        if not measured:
            lines.append(pair + "not measured (the sweep lacks one of the two arms).")
            continue
        found = crossings([(x, m[0]) for _, x, m in measured])
        lo, hi = fmt(measured[0][1]), fmt(measured[-1][1])
        if not found:
            leader = name_a if measured[0][2][0] > 0 else name_b
            clear = sum(bool(separated(m[0], m[1])) for _, _, m in measured)
            lines.append(
                f"{pair}not inside the measured range ({leader} leads at every count measured, {lo} to {hi}; "
                f"clear at {clear} of {len(measured)})."
            )
        for x, a_after, i in found:
            after, before = (name_a, name_b) if a_after else (name_b, name_a)
            sides = [measured[i], measured[i + 1]]
            noisy = [fmt(xs) for _, xs, m in sides if not separated(m[0], m[1])]
            noise = f"; within noise at {' and '.join(noisy)}" if noisy else ""
            lines.append(
                f"{pair}{after} overtakes {before} at ≈{fmt(x)} (between {fmt(sides[0][1])} and "
                f"{fmt(sides[1][1])}{noise})."
            )
    return lines
