"""Aggregate Hydra run/multirun directories into a Markdown report, a CSV and a learning-curve plot.

Usage: transferlab-report DIR [DIR ...] [--out OUTDIR] [--metric test/acc]
       transferlab-report RUN_DIR   (one run: its loss, metrics and learning rate vs step, as RUN_DIR/curves.png)
Exit codes: 0 all jobs ok, 1 some failed or missing (outputs still written), 2 no job found, or runs whose data
fingerprints differ (data/identity.py) without --allow-mixed-data.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from transferlab.report.claims import claims_section
from transferlab.report.jobs import (
    SIDE_PREFIXES,
    Job,
    data_conflict,
    find_jobs,
    group_jobs,
    mean_std,
    numeric_values,
    varies,
    varying_keys,
)
from transferlab.report.tuning import tuning_section
from transferlab.report.when_to_use import find_pretrain

DASH = "–"


def table_metrics(jobs: list[Job]) -> list[str]:
    keys = {k for j in jobs if j.status == "ok" for k in j.metrics if numeric_values([j], k)}
    keys = [k for k in keys if not k.startswith(SIDE_PREFIXES)]
    return sorted(keys, key=lambda k: (not k.startswith("test/"), not k.startswith("val/"), k))


# ---------------------------------------------------------------- formatting
def fmt_mean_std(values: list[float]) -> str:
    mean, std = mean_std(values)
    if mean is None:
        return DASH
    return f"{mean:.4f} ± {DASH if std is None else f'{std:.4f}'}"


def human_count(x: float | None) -> str:
    if x is None:
        return DASH
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.1f}{unit}"
    return f"{x:.0f}"


def to_float(v) -> float | None:
    try:
        return None if isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return None


def fmt_value(v) -> str:
    return DASH if v is None else str(v)


def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_row(cells: list) -> str:
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


# ---------------------------------------------------------------- outputs
def write_markdown(path: Path, dirs, jobs, keys, groups, metrics, claim_metric: str) -> None:
    shown = [i for i, k in enumerate(keys) if varies(k, jobs)]  # a column the whole sweep shares says nothing
    constant = [f"{keys[i]}={fmt_value(jobs[0].config.get(keys[i]))}" for i in range(len(keys)) if i not in shown]
    header = [keys[i] for i in shown] + ["n", "failed", "missing"] + metrics + ["trainable params", "fit time (s)"]
    lines = ["# transferlab report", "", "Sources:", ""] + [f"- `{d}`" for d in dirs]
    if constant:
        lines += ["", "The same in every job: " + ", ".join(f"`{c}`" for c in constant) + "."]
    lines += ["", md_row(header), md_row(["---"] * len(header))]
    for values, members in groups.items():
        counts = [sum(j.status == s for j in members) for s in ("ok", "failed", "missing")]
        fit = mean_std(numeric_values(members, "time/fit_s"))[0]
        lines.append(
            md_row(
                [fmt_value(values[i]) for i in shown]
                + counts
                + [fmt_mean_std(numeric_values(members, m)) for m in metrics]
                + [
                    human_count(mean_std(numeric_values(members, "params/trainable"))[0]),
                    DASH if fit is None else f"{fit:.1f}",
                ]
            )
        )
    lines += claims_section(jobs, claim_metric, find_pretrain(dirs, path.parent))
    failed = [j for j in jobs if j.status == "failed"]
    missing = [j for j in jobs if j.status == "missing"]
    lines += ["", "## Failed jobs", ""]
    lines += [f"- `{j.rel}`: {md_cell(j.error or 'no error message')}" for j in failed] or ["None."]
    lines += ["", "## Missing", ""]
    lines += [f"- `{j.rel}` (no metrics.json; still running or never finished)" for j in missing] or ["None."]
    lines += tuning_section(dirs)
    path.write_text("\n".join(lines) + "\n")


def write_csv(path: Path, jobs, keys) -> None:
    metric_keys = sorted({k for j in jobs for k in j.metrics})
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["job_dir", "status", "error"] + keys + ["seed"] + metric_keys)
        for j in jobs:
            writer.writerow(
                [j.rel, j.status, j.error]
                + [j.config.get(k, "") for k in keys + ["seed"]]
                + [j.metrics.get(k, "") for k in metric_keys]
            )


def curve_lines(groups: dict, keys: list[str], metric: str) -> dict[str, list[tuple]]:
    """{label: [(fraction, mean, std), ...]} with one line per configuration minus train_fraction."""
    frac_idx = keys.index("data.train_fraction")
    lines: dict[str, list[tuple]] = {}
    for values, members in groups.items():
        frac = to_float(values[frac_idx])
        mean, std = mean_std(numeric_values(members, metric))
        if mean is None or frac is None or frac <= 0:
            continue
        label = " / ".join(fmt_value(v) for i, v in enumerate(values) if i != frac_idx)
        lines.setdefault(label, []).append((frac, mean, std or 0.0))
    return {label: sorted(points) for label, points in lines.items()}


def plot_curves(path: Path, lines: dict[str, list[tuple]], metric: str, legend_title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (makes matplotlib.ticker available)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in lines.items():
        xs, ys, errs = zip(*points)
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xticks(sorted({x for points in lines.values() for x, _, _ in points}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("train fraction (data.train_fraction)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs train fraction (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=legend_title, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- CLI
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="transferlab-report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run or multirun directories (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: first DIR)")
    parser.add_argument("--metric", default="test/acc", help="metric for learning_curves.png and the claims")
    parser.add_argument(
        "--allow-mixed-data", action="store_true", help="report runs whose data fingerprints differ (default: refuse)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if len(args.dirs) == 1 and args.out is None:
        from transferlab.report.curves import is_single_run, plot_run

        if is_single_run(args.dirs[0]):  # one run: its curves
            print(f"curves: {plot_run(args.dirs[0])}")
            return 0
    jobs = find_jobs(args.dirs)
    if not jobs:
        where = ", ".join(str(d) for d in args.dirs)
        print(
            f"transferlab-report: error: no jobs found under {where} (expected run dirs containing .hydra/config.yaml)",
            file=sys.stderr,
        )
        return 2
    conflict = data_conflict(jobs)
    if conflict and not args.allow_mixed_data:
        print(f"error: {conflict}; report runs of one task, or pass --allow-mixed-data", file=sys.stderr)
        return 2
    if conflict:
        print(f"note: {conflict} (--allow-mixed-data)")
    out = args.out or args.dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    keys = varying_keys(jobs)
    groups = group_jobs(jobs, keys)
    write_markdown(out / "report.md", args.dirs, jobs, keys, groups, table_metrics(jobs), args.metric)
    print(f"report:          {out / 'report.md'}")
    write_csv(out / "results.csv", jobs, keys)
    print(f"results:         {out / 'results.csv'}")
    lines = curve_lines(groups, keys, args.metric)
    if lines:
        legend_title = " / ".join(k for k in keys if k != "data.train_fraction")
        plot_curves(out / "learning_curves.png", lines, args.metric, legend_title)
        print(f"learning curves: {out / 'learning_curves.png'}")
    else:
        print(f"note: no data for metric {args.metric!r}; learning_curves.png not written")
    n_bad = sum(j.status != "ok" for j in jobs)
    print(
        f"{len(jobs)} jobs: {len(jobs) - n_bad} ok, "
        f"{sum(j.status == 'failed' for j in jobs)} failed, {sum(j.status == 'missing' for j in jobs)} missing"
    )
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
