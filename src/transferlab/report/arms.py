"""The study's arms and curves as the report's decisions read them (when_to_use.py, payback.py): each arm's metric
per seed against the labels its runs used."""

from __future__ import annotations

import statistics

SCRATCH, PRETRAINED = ("scratch", "none"), ("pretrained", "none")  # (init, freeze.name): an arm of the study
PROBE, TFIDF = ("pretrained", "backbone"), ("tfidf", "none")
LABELS = "data/train_examples"
TIME = "time/fit_s"


# ---------------------------------------------------------------- reading the jobs
def num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def label_axis(jobs) -> tuple[dict, bool]:
    """{fraction: labels} (the mean data/train_examples of its runs) and True; ({fraction: fraction}, False) when
    some run does not record the count (multipliers, being ratios, read the same either way)."""
    ok = [j for j in jobs if j.status == "ok" and num(j.config.get("data.train_fraction"))]
    counted = bool(ok) and all(num(j.metrics.get(LABELS)) for j in ok)
    by: dict = {}
    for j in ok:
        f = j.config["data.train_fraction"]
        by.setdefault(f, []).append(float(j.metrics[LABELS]) if counted else float(f))
    return {f: statistics.fmean(v) for f, v in by.items()}, counted


def seed_curves(jobs, arm: tuple, key: str, axis: dict) -> dict:
    """{seed: [(labels, value), ...]} of one arm (init, freeze) for a metrics.json key."""
    out: dict = {}
    for j in jobs:
        c = j.config
        if j.status == "ok" and (c.get("init"), c.get("freeze.name")) == arm and num(j.metrics.get(key)):
            if c.get("data.train_fraction") in axis:
                out.setdefault(c.get("seed"), []).append((axis[c["data.train_fraction"]], float(j.metrics[key])))
    return {s: sorted(points) for s, points in out.items()}


def mean_curve(curves: dict) -> list:
    by: dict = {}
    for points in curves.values():
        for x, y in points:
            by.setdefault(x, []).append(y)
    return sorted((x, statistics.fmean(ys)) for x, ys in by.items())


def scratch_needs(jobs, metric: str, axis: dict) -> dict:
    """{labels: (pre-trained score, [(kind, labels scratch needs), ...] per seed)}: per seed, where scratch
    fine-tuning's curve reaches pre-trained fine-tuning's score at that count (interpolate.labels_to_reach); where the
    seeds do not pair, the mean curves stand in for one seed. Labels saved and compute paid back both read this, so
    they quote one figure."""
    from transferlab.report.interpolate import labels_to_reach

    scratch, pre = seed_curves(jobs, SCRATCH, metric, axis), seed_curves(jobs, PRETRAINED, metric, axis)
    seeds = sorted(scratch.keys() & pre.keys(), key=str)
    pairs = [(scratch[s], dict(pre[s])) for s in seeds]
    if not pairs and scratch and pre:
        pairs = [(mean_curve(scratch), dict(mean_curve(pre)))]
    out = {}
    for x in sorted(axis.values()):
        results = [labels_to_reach(curve, p[x]) for curve, p in pairs if x in p]
        if results:
            out[x] = (statistics.fmean(p[x] for _, p in pairs if x in p), results)
    return out
