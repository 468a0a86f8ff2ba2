"""One run's curves (transferlab-report RUN_DIR): train and validation loss, the objective's validation metrics and
the learning rate, against the optimizer step, read from the run's CSV log (<run>/csv/metrics.csv*), as
<run>/curves.png; beside them, the figures the objective left in the run dir (its eval-set files, e.g. a confusion
matrix)."""

import csv
from pathlib import Path


def is_single_run(path: Path) -> bool:
    return (path / "csv").is_dir() and (path / ".hydra" / "config.yaml").is_file()


def read_log(run: Path) -> dict:
    """{column: [(step, value), ...]} over the run's CSV logs (a resumed run's earlier ones first)."""
    series: dict = {}
    files = sorted((run / "csv").glob("metrics.*.csv")) + [run / "csv" / "metrics.csv"]
    for path in [p for p in files if p.is_file()]:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                step = row.get("step")
                for column, value in row.items():
                    if column in ("epoch", "step") or value in ("", None) or step in ("", None):
                        continue
                    series.setdefault(column, []).append((int(float(step)), float(value)))
    return series


def plot_run(run: Path) -> Path:
    """<run>/curves.png from the run's CSV log."""
    import matplotlib.pyplot as plt

    series = read_log(run)
    if not any(k in series for k in ("train/loss", "val/loss")):
        raise SystemExit(
            f"transferlab-report: error: {run / 'csv'} logs no train/loss or val/loss to plot (was logger.csv off?)"
        )
    out = run / "curves.png"
    fig = draw(series, run.name, sorted(p for p in run.glob("*.png") if p != out))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw(series: dict, title: str, figures: tuple = ()):
    """Loss on the left axis (train and validation), the validation scores on a second panel, the learning rate on
    its own axis beside the loss, then each of `figures` (PNG files) as a panel of its own: the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # scores (transferlab keeps them as fractions); perplexity repeats the loss, and counts are no curve
    metrics = sorted(
        k for k in series if k.startswith("val/") and k != "val/loss" and all(0 <= v <= 1 for _, v in series[k])
    )
    panels = (2 if metrics else 1) + len(figures)
    fig, axes = plt.subplots(
        1, panels, figsize=((12 if metrics else 7) + 5.5 * len(figures), 5.5 if figures else 4.5), squeeze=False
    )
    loss = axes[0][0]
    for key, style in (("train/loss", "-"), ("val/loss", "o-")):
        if key in series:
            steps, values = zip(*sorted(series[key]))
            loss.plot(steps, values, style, label=key, markersize=4)
    loss.set_xlabel("optimizer step")
    loss.set_ylabel("loss")
    lr = next((k for k in sorted(series) if k.startswith("lr-")), None)
    if lr:
        twin = loss.twinx()
        steps, values = zip(*sorted(series[lr]))
        twin.plot(steps, values, ":", color="grey", label="learning rate")
        twin.set_ylabel("learning rate")
        twin.legend(loc="upper center", fontsize="small")
    loss.legend(loc="upper right", fontsize="small")
    loss.grid(alpha=0.3)
    if metrics:
        panel = axes[0][1]
        for key in metrics:
            steps, values = zip(*sorted(series[key]))
            panel.plot(steps, values, "o-", label=key, markersize=4)
        panel.set_xlabel("optimizer step")
        panel.set_title("validation")
        panel.legend(fontsize="small")
        panel.grid(alpha=0.3)
    for panel, path in zip(axes[0][panels - len(figures) :], figures):
        panel.imshow(plt.imread(path))
        panel.set_axis_off()
        panel.set_title(path.name, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
