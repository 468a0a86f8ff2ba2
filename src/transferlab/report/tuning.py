"""The report's "Selection on validation" section: what multirun.sh --tune chose per arm and fraction, and by which
rule, read from the study's tuning.json (report/select.py writes it)."""

from __future__ import annotations

import json
from pathlib import Path


def find_tuning(dirs: list[Path]) -> Path | None:
    """tuning.json in a source dir or next to it (multirun.sh: <study>/tuning.json beside <study>/sweep)."""
    for d in dirs:
        for candidate in (d / "tuning.json", d.parent / "tuning.json"):
            if candidate.is_file():
                return candidate
    return None


def tuning_section(dirs: list[Path]) -> list[str]:
    path = find_tuning(dirs)
    if path is None:
        return []
    tuning = json.loads(path.read_text())
    metric, keys = tuning["metric"], list(tuning["grid"])
    grid = "; ".join(f"`{k}` ∈ {{{', '.join(v)}}}" for k, v in tuning["grid"].items())
    lines = ["", "## Selection on validation", "", f"From `{path}`. Grid: {grid}. Rule: {tuning['rule']}."]
    lines += ["The TF-IDF arm picks its regularisation C on validation itself.", ""]
    lines += [f"| init | freeze | train fraction | chosen | {metric} per grid value |", "|---|---|---|---|---|"]
    for arm in tuning["arms"]:
        chosen = ", ".join(f"{k}={v}" for k, v in arm["chosen"].items()) if arm["chosen"] else "none (no run scored)"
        scores = ", ".join(
            f"{'/'.join(str(r[k]) for k in keys)}: " + ("–" if r[metric] is None else f"{r[metric]:.4f}")
            for r in arm["scores"]
        )
        lines.append(f"| {arm['init']} | {arm['freeze']} | {arm['data.train_fraction']} | {chosen} | {scores} |")
    return lines
