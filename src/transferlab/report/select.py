"""Per-arm selection on validation for the transfer study (multirun.sh --tune).

The tuning sweep runs a finite grid (e.g. optimizer.lr=1e-4,5e-4,1e-3) for every arm (init x freeze) and train
fraction with the study's first seed. `select` picks, per arm and fraction, the grid point with the lowest val/loss
(--by acc|f1_macro|mcc: the highest of that score) at the checkpoint each run tests, and writes tuning.json;
`overrides` turns that file into the command lines of the final sweep (all seeds). Only val/* keys of a run's
metrics.json are ever read: a choice made on test would leak the test set into the result.

Usage: python -m transferlab.report.select plan --inits N --freezes a,b --fractions f,g --seeds N [--by B] --grid SPEC
       python -m transferlab.report.select select TUNE_DIR --out tuning.json [--by B] --grid SPEC ...
       python -m transferlab.report.select overrides tuning.json
SPEC is KEY=V1,V2,... (lr is short for optimizer.lr). Exit codes: 0 ok, 1 an arm had no usable run, 2 bad input.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from pathlib import Path

from transferlab.errors import TransferlabError

# --by: the validation score that selects, and its direction. loss is every objective's and the default checkpoint
# monitor; the others are the study's classification scores, higher is better (multirun.sh --select-by sets the runs'
# checkpoint monitor to the same score, so each run tests the checkpoint that scored best on it).
BY = {"loss": "min", "acc": "max", "f1_macro": "max", "mcc": "max"}


def rule(by: str = "loss") -> str:
    metric, tested = f"val/{by}", f"val/best_{by}"
    return (
        f"{'lowest' if BY[by] == 'min' else 'highest'} {metric} of the grid runs with the first seed, read at the "
        f"checkpoint each run tests ({tested} in metrics.json; the final weights' {metric} for a run without one); "
        "ties go to the earlier grid point; test metrics are never read"
    )


RULE = rule()
ARM_KEYS = ("init", "freeze", "data.train_fraction")  # an arm x fraction; `freeze` is the group (config freeze.name)
ALIASES = {"lr": "optimizer.lr"}
SWEEP_FUNCTIONS = ("range(", "interval(", "choice(", "glob(", "shuffle(", "sort(", "tag(", "[", "{")
EXAMPLE = "e.g. --tune lr=1e-4,5e-4,1e-3"


# ---------------------------------------------------------------- the grid
def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """{config key: [values as written]}: finite, each with at least two distinct values, not a study axis."""
    if not specs:
        raise TransferlabError(f"--tune needs a grid; {EXAMPLE}")
    grid: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        if not sep or not key:
            raise TransferlabError(f"--tune {spec!r} is not KEY=V1,V2,...; {EXAMPLE}")
        if any(f in values for f in SWEEP_FUNCTIONS):
            raise TransferlabError(f"--tune {spec!r} is not a finite list of values; list them, {EXAMPLE}")
        items = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not v for v in items):
            raise TransferlabError(f"--tune {spec!r} has an empty value; {EXAMPLE}")
        if len(set(items)) != len(items):
            raise TransferlabError(f"--tune {spec!r} lists a value twice; list each value once")
        if len(items) < 2:
            raise TransferlabError(f"--tune {spec!r} has one value, nothing to select; give two or more, {EXAMPLE}")
        if key in ("init", "freeze", "seed", "data.train_fraction") or key.startswith("hydra."):
            raise TransferlabError(f"--tune {key} is an axis of the study, not a tunable; use its own option")
        if key.startswith("freeze."):
            raise TransferlabError(f"--tune {key}: freeze keys differ between arms; tune a key every arm has (lr)")
        if key in grid:
            raise TransferlabError(f"--tune {key} is given twice; give it once with all its values")
        grid[key] = items
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def cost_line(grid: dict[str, list[str]], arms: int, fractions: int, seeds: int) -> str:
    points = len(grid_points(grid))
    shape = "" if len(grid) == 1 else " (" + " x ".join(f"{k} {len(v)}" for k, v in grid.items()) + ")"
    return (
        f"tuning: {points} values{shape} x {arms} arms x {fractions} fractions = {points * arms * fractions} runs, "
        f"then {arms} x {fractions} x {seeds} seeds = {arms * fractions * seeds} runs"
    )


# ---------------------------------------------------------------- reading the tuning runs (val/* only)
def _same(config_value, written: str) -> bool:
    """A job's config value against the grid value as written (Hydra reads 1e-4 as the float 0.0001)."""
    if isinstance(config_value, (int, float)) and not isinstance(config_value, bool):
        try:
            return float(written) == float(config_value)
        except ValueError:
            return False
    return str(config_value).lower() == written.lower()


def read_run(job_dir: Path) -> tuple[dict, str, dict]:
    """(flattened config, status, the val/* metrics): nothing else of metrics.json leaves this function."""
    import yaml

    from transferlab.report.jobs import flatten

    config = flatten(yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text()) or {})
    path = job_dir / "metrics.json"
    if not path.is_file():
        return config, "missing", {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return config, "failed", {}
    status = "ok" if raw.get("status", "ok") == "ok" else "failed"
    return config, status, {k: v for k, v in raw.items() if k.startswith("val/")}


def _score(val: dict, by: str) -> tuple[float | None, str]:
    """(the score, the key it was read from): the tested checkpoint's val/<by>, else the final weights'."""
    key = f"val/best_{by}" if f"val/best_{by}" in val else f"val/{by}"
    v = val.get(key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return (float(v) if ok else None), key


def select(tune_dir: Path, grid: dict[str, list[str]], by: str = "loss") -> dict:
    """The selection file's contents: per arm x fraction, each grid point's val score and the chosen point."""
    points, metric = grid_points(grid), f"val/{by}"
    arms: dict[tuple, list] = {}
    for cfg_file in sorted(tune_dir.rglob(".hydra/config.yaml")):
        job = cfg_file.parent.parent
        config, status, val = read_run(job)
        arm = (config.get("init"), config.get("freeze.name"), config.get("data.train_fraction"))
        index = next((i for i, p in enumerate(points) if all(_same(config.get(k), v) for k, v in p.items())), None)
        if index is None:
            raise TransferlabError(f"{job} ran a value outside the grid {grid}; select over the sweep that ran it")
        runs = arms.setdefault(arm, [None] * len(points))
        score, read = _score(val, by) if status == "ok" else (None, None)
        runs[index] = {**points[index], metric: score, "read": read, "status": status,
                       "run": os.path.relpath(job, tune_dir)}  # fmt: skip
    if not arms:
        raise TransferlabError(f"no tuning runs under {tune_dir}; run the tuning sweep first (multirun.sh --tune)")
    out = []
    for arm in sorted(arms, key=lambda a: tuple(str(x) for x in a)):
        runs = [
            r or {**p, metric: None, "read": None, "status": "missing", "run": None} for p, r in zip(points, arms[arm])
        ]
        scored = [r for r in runs if r[metric] is not None]
        sign = 1 if BY[by] == "min" else -1
        best = min(scored, key=lambda r: sign * r[metric]) if scored else None  # the first of equal scores
        chosen = {k: best[k] for k in grid} if best else None
        out.append({**dict(zip(ARM_KEYS, arm)), "scores": runs, "chosen": chosen})
    return {"rule": rule(by), "metric": metric, "mode": BY[by], "grid": grid, "arms": out}


def overrides(tuning: dict) -> list[str]:
    """One line per arm x fraction with a choice: the overrides that pin the arm and set its chosen values."""
    lines = []
    for arm in tuning["arms"]:
        if arm["chosen"] is not None:
            pinned = [f"{k}={arm[k]}" for k in ARM_KEYS] + [f"{k}={v}" for k, v in arm["chosen"].items()]
            lines.append(" ".join(pinned))
    return lines


def _check_scored(by: str, extra: list[str]) -> None:
    """--select-by a score that the study's objective (classification, or an objective=NAME override) logs."""
    if by == "loss":
        return
    from transferlab.objectives import OBJECTIVES

    objective = [e.partition("=")[2] for e in extra if e.lstrip("+~").partition("=")[0] == "objective"]
    name = (objective or ["classification"])[-1]
    if name not in OBJECTIVES:
        return  # the first run refuses an unknown objective in one line, naming the choices
    if by not in OBJECTIVES[name].scores:
        choices = ", ".join(s for s in BY if s == "loss" or s in OBJECTIVES[name].scores)
        raise TransferlabError(f"--select-by {by}: objective={name} logs no val/{by}; choose one of {choices}")


# ---------------------------------------------------------------- CLI
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m transferlab.report.select", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="check the grid, print the cost line and the tuning sweep's overrides")
    plan.add_argument("--inits", type=int, required=True)
    plan.add_argument("--freezes", required=True)
    plan.add_argument("--fractions", required=True)
    plan.add_argument("--seeds", type=int, required=True)
    plan.add_argument("--extra", action="append", default=[], help="the study's own overrides (none may set a tunable)")
    plan.add_argument("--grid", dest="specs", action="append", default=[], help="KEY=V1,V2,... (repeatable)")
    plan.add_argument("--by", default="loss", help=f"the validation score that selects: {', '.join(BY)}")
    pick = sub.add_parser("select", help="pick per arm x fraction on validation and write the selection file")
    pick.add_argument("tune_dir", type=Path)
    pick.add_argument("--out", type=Path, required=True)
    pick.add_argument("--grid", dest="specs", action="append", default=[], help="the grid the tuning sweep ran")
    pick.add_argument("--by", default="loss", help=f"the validation score that selects: {', '.join(BY)}")
    lines = sub.add_parser("overrides", help="print the final sweep's overrides, one arm x fraction a line")
    lines.add_argument("tuning", type=Path)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if getattr(args, "by", "loss") not in BY:
            raise TransferlabError(f"--select-by {args.by}: choose one of {', '.join(BY)}")
        if args.command == "plan":
            grid = parse_grid(args.specs)
            for extra in args.extra:
                key = extra.lstrip("+~").partition("=")[0]
                if key in grid:
                    raise TransferlabError(f"{extra} sets {key}, which --tune selects; drop one of the two")
                if args.by != "loss" and key.startswith("callbacks.checkpoint.mo"):
                    raise TransferlabError(f"{extra}: --select-by {args.by} sets the checkpoint monitor; drop one")
            _check_scored(args.by, args.extra)
            arms = args.inits * len(args.freezes.split(","))
            print(cost_line(grid, arms, len(args.fractions.split(",")), args.seeds))
            for key, values in grid.items():
                print(f"{key}={','.join(values)}")
            return 0
        if args.command == "select":
            tuning = select(args.tune_dir, parse_grid(args.specs), args.by)
            args.out.write_text(json.dumps(tuning, indent=2) + "\n")
            for arm in tuning["arms"]:
                chosen = " ".join(f"{k}={v}" for k, v in (arm["chosen"] or {}).items()) or "none (no run scored)"
                print(f"selected: {' '.join(f'{k}={arm[k]}' for k in ARM_KEYS)}: {chosen}")
            print(f"selection: {args.out} (rule: {tuning['rule']})")
            return 0 if all(arm["chosen"] is not None for arm in tuning["arms"]) else 1
        print("\n".join(overrides(json.loads(args.tuning.read_text()))))
        return 0
    except TransferlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
