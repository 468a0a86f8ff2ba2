"""Masked-token accuracy vs step for pre-training runs: the curves and table in docs/pretraining.md.

    python bench/pretrain_curves.py --out docs/pretraining LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Each RUN_DIR is a `transferlab-train experiment=pretrain_mlm ...` run with the csv logger and periodic validation
(e.g. trainer.val_check_interval=250 trainer.check_val_every_n_epoch=null). The script reads <run>/csv/metrics.csv
and <run>/metrics.json, writes curves.png and curves.md (val/acc per validation, the final one, and fit time).
"""

import argparse
import csv
import json
from pathlib import Path


def curve(run: Path) -> list[tuple[int, float]]:
    rows = []
    for path in sorted((run / "csv").glob("metrics*.csv")):
        with path.open() as f:
            rows += [(int(r["step"]), float(r["val/acc"])) for r in csv.DictReader(f) if r.get("val/acc")]
    return sorted(set(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = dict(r.rsplit("=", 1) for r in args.runs)  # a label may hold "=" itself
    curves = {label: curve(Path(d)) for label, d in runs.items()}
    args.out.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in curves.items():
        ax.plot(*zip(*points), marker="o", markersize=3, label=label)
    ax.axhline(0.35, color="grey", linestyle="--", linewidth=1, label="target 0.35")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation masked-token accuracy")
    ax.set_title("MLM pre-training on wordnet_corpus, 2 CPU cores")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=120)

    lines = ["| run | steps | val/acc at each validation | final val/acc | fit (s) |", "|---|---|---|---|---|"]
    for label, points in curves.items():
        metrics = json.loads((Path(runs[label]) / "metrics.json").read_text())
        shown = ", ".join(f"{s}: {a:.3f}" for s, a in points)
        lines.append(
            f"| {label} | {points[-1][0]} | {shown} | {metrics.get('val/acc', float('nan')):.3f} | "
            f"{metrics.get('time/fit_s', 0):.0f} |"
        )
    (args.out / "curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
