"""The study's claims, computed from a sweep's numbers (transferlab-report writes them into report.md).

For each train fraction, seed-paired differences of the report's metric (default test/acc) between arms that
differ in one thing only:
- fine-tuning (freeze=none) from pre-trained weights vs from random weights of the same architecture;
- a probe (freeze=backbone) on pre-trained features vs on random features;
- pre-trained fine-tuning vs the TF-IDF + logistic-regression baseline (init=tfidf).
A margin is called clear when it exceeds 2 standard deviations of the paired differences across seeds; with one seed
that cannot be told, and the table says so. Last, whether pre-training helps most where labels are scarcest: the
fine-tuning margin at the smallest fraction against the largest. Then "When to use each" (when_to_use.py).
"""

from __future__ import annotations

import statistics

COMPARISONS = (  # (title, (init, freeze) of the arm, (init, freeze) of its reference)
    ("pre-trained − scratch, fine-tuned", ("pretrained", "none"), ("scratch", "none")),
    ("probe: pre-trained − random features", ("pretrained", "backbone"), ("scratch", "backbone")),
    ("pre-trained fine-tuned − TF-IDF", ("pretrained", "none"), ("tfidf", "none")),
)


def _by_seed(jobs, init: str, freeze: str, fraction, metric: str) -> dict:
    out = {}
    for j in jobs:
        c = j.config
        if (
            j.status == "ok"
            and c.get("init") == init
            and c.get("freeze.name") == freeze
            and c.get("data.train_fraction") == fraction
        ):
            value = j.metrics.get(metric)
            if isinstance(value, (int, float)):
                out[c.get("seed")] = float(value)
    return out


def margin(jobs, arm: tuple, reference: tuple, fraction, metric: str) -> tuple[float, float | None, int] | None:
    """(mean, std, n) of the seed-paired differences arm - reference; None when no seed has both."""
    a, b = _by_seed(jobs, *arm, fraction, metric), _by_seed(jobs, *reference, fraction, metric)
    diffs = [a[s] - b[s] for s in sorted(a.keys() & b.keys(), key=str)]
    if not diffs:
        return None
    return statistics.fmean(diffs), (statistics.stdev(diffs) if len(diffs) > 1 else None), len(diffs)


def separated(mean: float, std: float | None) -> bool | None:
    """The 2-std rule: whether seed-paired differences (mean, std) tell the arms apart; None with one seed."""
    return None if std is None else abs(mean) > 2 * std


def _cell(m) -> str:
    if m is None:
        return "–"
    mean, std, n = m
    if separated(mean, std) is None:
        verdict = "one seed: cannot tell"
    elif separated(mean, std):
        verdict = "clear (> 2 std)" if mean > 0 else "clearly worse (< −2 std)"
    else:
        verdict = "within 2 std"
    spread = "" if std is None else f" ± {100 * std:.1f}"
    return f"{100 * mean:+.1f}{spread} pts, {verdict} (n={n})"


def claims_section(jobs, metric: str = "test/acc", pretrain=None) -> list[str]:
    """The Claims section's lines; `pretrain` is the pre-training run's (metrics.json path, metrics), if any, for
    when_to_use.py's compute payback."""
    from transferlab.report.when_to_use import when_to_use_section

    fractions = sorted(
        {
            j.config.get("data.train_fraction")
            for j in jobs
            if isinstance(j.config.get("data.train_fraction"), (int, float))
        }
    )
    rows = {f: [margin(jobs, arm, ref, f, metric) for _, arm, ref in COMPARISONS] for f in fractions}
    present = [i for i in range(len(COMPARISONS)) if any(rows[f][i] is not None for f in fractions)]
    lines = ["", "## Claims", ""]
    if not present:
        return lines + [
            "No claim can be computed: the sweep has no pair of arms that differ only in pre-training "
            "(init=pretrained vs init=scratch or tfidf at the same freeze and fraction)."
        ]
    lines += [f"Seed-paired differences in {metric} (percentage points), per train fraction.", ""]
    lines.append("| fraction | " + " | ".join(COMPARISONS[i][0] for i in present) + " |")
    lines.append("|---|" + "---|" * len(present))
    for f in fractions:
        lines.append(f"| {f:g} | " + " | ".join(_cell(rows[f][i]) for i in present) + " |")
    small, large = (rows[fractions[0]][0], rows[fractions[-1]][0]) if fractions else (None, None)
    if small is not None and large is not None and fractions[0] != fractions[-1]:
        more = small[0] > large[0]
        lines += [
            "",
            f"Labels scarce vs plentiful: pre-training adds {100 * small[0]:+.1f} pts at fraction {fractions[0]:g} "
            f"and {100 * large[0]:+.1f} pts at {fractions[-1]:g}: "
            + (
                "it helps most where labels are scarcest."
                if more
                else "it does not help most where labels are scarcest."
            ),
        ]
    return lines + when_to_use_section(jobs, metric, pretrain)
