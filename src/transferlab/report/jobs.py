"""The jobs of a sweep as the study report reads them: each run dir's config, status and metrics, and which config
keys vary between them (the report's columns) and group them (its rows)."""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

CORE_KEYS = ("init", "freeze.name", "data.train_fraction")
SIDE_PREFIXES = (
    "params/",
    "time/",
    "throughput/",
    "baseline/",
    "data/",
)  # not mean ± std columns (results.csv has them)


@dataclass
class Job:
    path: Path
    rel: str
    config: dict  # flattened, dotted keys
    status: str  # ok | failed | missing
    error: str = ""
    metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------- loading
def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tuple(node) if isinstance(node, list) else node}


def load_job(job_dir: Path, base: Path) -> Job:
    import yaml

    config = flatten(yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text()) or {})
    if "init" not in config:
        config["init"] = "pretrained" if config.get("model.name_or_path") else "scratch"
    rel = os.path.relpath(job_dir, base)
    metrics_file = job_dir / "metrics.json"
    if not metrics_file.is_file():
        return Job(job_dir, rel, config, "missing")
    try:
        raw = json.loads(metrics_file.read_text())
    except (OSError, ValueError) as exc:
        return Job(job_dir, rel, config, "failed", f"unreadable metrics.json: {exc}")
    status = str(raw.pop("status", "failed" if "error" in raw else "ok"))
    error = str(raw.pop("error", "") or "")
    return Job(job_dir, rel, config, "ok" if status == "ok" else "failed", error, raw)


def find_jobs(dirs: list[Path]) -> list[Job]:
    base = Path(os.path.commonpath([d.resolve() for d in dirs]))
    found = {cfg.parent.parent.resolve() for d in dirs for cfg in d.resolve().rglob(".hydra/config.yaml")}
    natural = lambda p: [(0, int(s), "") if s.isdigit() else (1, 0, s) for s in p.parts]  # noqa: E731
    return [load_job(p, base) for p in sorted(found, key=natural)]


# ---------------------------------------------------------------- grouping
def is_pathish(key: str) -> bool:
    return key.startswith(("hydra.", "paths.")) or "dir" in key.lower()


def determined_by_core(key: str, jobs: list[Job]) -> bool:
    """True when the core keys fix this key's value (e.g. model.arch follows init): it adds no column."""
    seen: dict[tuple, str] = {}
    for j in jobs:
        core = tuple(repr(j.config.get(k)) for k in CORE_KEYS)
        if seen.setdefault(core, repr(j.config.get(key))) != repr(j.config.get(key)):
            return False
    return True


def varies(key: str, jobs: list[Job]) -> bool:
    return len({repr(j.config.get(key)) for j in jobs}) > 1


def varying_keys(jobs: list[Job]) -> list[str]:
    """The core keys, then any other key whose value differs between jobs (and that the core keys don't fix)."""
    keys = {k for j in jobs for k in j.config}
    extra = sorted(
        k
        for k in keys - set(CORE_KEYS)
        if k != "seed" and not is_pathish(k) and varies(k, jobs) and not determined_by_core(k, jobs)
    )
    return list(CORE_KEYS) + extra


def sort_key(values: tuple) -> tuple:
    return tuple(
        (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v)) for v in values
    )


def group_jobs(jobs: list[Job], keys: list[str]) -> dict[tuple, list[Job]]:
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.config.get(k) for k in keys), []).append(job)
    return dict(sorted(groups.items(), key=lambda kv: sort_key(kv[0])))


def numeric_values(jobs: list[Job], metric: str) -> list[float]:
    vals = [j.metrics.get(metric) for j in jobs if j.status == "ok"]
    return [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


FINGERPRINT = "data/fingerprint_"  # data/identity.py: one per split of the task a run did


def data_conflict(jobs: list[Job]) -> str | None:
    """Two runs of one objective whose data fingerprints (per split) differ, named; None when they all agree. A run
    that records none (older runs, streams, mixes) is not compared."""
    first: dict = {}  # (objective, metrics key) -> (the first job recording it, its value)
    for j in jobs:
        if j.status != "ok":
            continue
        for key, value in sorted(j.metrics.items()):
            if key.startswith(FINGERPRINT):
                seen, was = first.setdefault((j.config.get("objective.name"), key), (j, value))
                if was != value:
                    split = key[len(FINGERPRINT) :].replace("_", " ")
                    return (
                        f"runs {seen.rel} and {j.rel} did not see the same data ({split} fingerprints {was} vs {value})"
                    )
    return None
