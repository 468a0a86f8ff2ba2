"""The probe (freeze=backbone): what an epoch costs next to fine-tuning, and how close it gets to a converged
logistic regression on the very same frozen features. Both through the product path (transferlab-train).

    python bench/probe.py --source RUN/export [--labels 570,2000,5700,57646] [--examples 5000] [--rounds 3]

1. Epoch cost, on the first --examples train examples of wordnet_topics, validation off: one fine-tune epoch
   (experiment=finetune) and 20 probe epochs (experiment=probe, its own batch of 256, and at the fine-tune's batch of
   32) per round, interleaved, median over rounds. The feature pass (once per split, then cached) is timed apart.
2. Probe vs logistic regression: for each label count, `transferlab-train experiment=probe data.max_train_samples=N`
   (early stopping on val/loss, best checkpoint tested), then scikit-learn's LogisticRegression on the cached features
   of the same splits (read back through the product's own assembly: a cache hit), C chosen on validation.
Writes outputs/bench/results/probe.json and prints a markdown table (docs/benchmarks.md keeps it).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "outputs" / "bench" / "results"
TRAIN = Path(sys.executable).parent / "transferlab-train"
QUIET = ["logger=none", "callbacks.progress_bar=false", "export=false"]


def run(overrides: list, workdir: Path) -> tuple[dict, str]:
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    out = subprocess.run([str(TRAIN), *overrides, *QUIET, f"hydra.run.dir={run_dir}"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"transferlab-train {' '.join(overrides)} failed:\n{out.stderr[-2000:]}")
    return json.loads((run_dir / "metrics.json").read_text()), out.stderr


def epoch_cost(source: str, examples: int, rounds: int, workdir: Path) -> dict:
    common = [
        f"model.name_or_path={source}",
        f"data.max_train_samples={examples}",
        "trainer.limit_val_batches=0",
        "test=false",
        "callbacks.checkpoint.enabled=false",
    ]
    probe = ["experiment=probe", *common, "trainer.max_epochs=20", "callbacks.early_stopping=null"]
    runners = {
        "fine-tune epoch (batch 32)": (["experiment=finetune", *common, "trainer.max_epochs=1"], 1),
        "probe epoch (batch 256)": (probe, 20),
        "probe epoch (batch 32)": ([*probe, "data.batch_size=32"], 20),
    }
    times = {name: [] for name in runners}
    feature_pass = None
    for _ in range(rounds):
        for name, (overrides, epochs) in runners.items():
            metrics, log = run(overrides, workdir)
            times[name].append(metrics["time/fit_s"] / epochs)
            match = re.search(r"frozen features: (.*) in the cache, ready in ([0-9.]+)s", log)
            if match and "miss" in match.group(1):
                feature_pass = float(match.group(2))
    medians = {name: statistics.median(t) for name, t in times.items()}
    fine = medians["fine-tune epoch (batch 32)"]
    return {
        "examples": examples,
        "rounds": rounds,
        "seconds": medians,
        "feature_pass_s": feature_pass,
        "ratio_to_fine_tune": {name: t / fine for name, t in medians.items()},
    }


def converged_lr(source: str, n: int, seed: int) -> float:
    """LogisticRegression (C on validation) on the cached features of the probe run's own splits."""
    import numpy as np
    from rich.console import Console
    from sklearn.linear_model import LogisticRegression

    from transferlab.cli.front import compose
    from transferlab.run.assemble import assemble

    cfg = compose(
        ["experiment=probe", f"model.name_or_path={source}", f"data.max_train_samples={n}", f"seed={seed}", *QUIET]
    )
    with tempfile.TemporaryDirectory() as d:
        datasets = assemble(cfg, Path(d), [], True, Console(stderr=True, quiet=True)).datamodule.datasets
    xy = {s: (np.asarray(ds.features), np.asarray(ds.columns["labels"])) for s, ds in datasets.items()}
    best = None
    for c in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100):
        clf = LogisticRegression(C=c, max_iter=3000).fit(*xy["train"])
        val = clf.score(*xy["validation"])
        if best is None or val > best[0]:
            best = (val, c, clf.score(*xy["test"]))
    return best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="a pre-trained export (e.g. a pretrain_mlm run's export/)")
    parser.add_argument("--labels", default="570,2000,5700,57646")
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TRANSFERLAB_CACHE", str(ROOT / "outputs" / "bench" / "cache"))
    workdir = ROOT / "outputs" / "bench" / "probe_runs"
    workdir.mkdir(parents=True, exist_ok=True)
    source = str(Path(args.source).resolve())

    start = time.time()
    cost = epoch_cost(source, args.examples, args.rounds, workdir)
    accuracy = []
    for n in (int(x) for x in args.labels.split(",")):
        metrics, _ = run(
            ["experiment=probe", f"model.name_or_path={source}", f"data.max_train_samples={n}", f"seed={args.seed}"],
            workdir,
        )
        accuracy.append(
            {"labels": n, "probe": metrics["test/acc"], "logistic_regression": converged_lr(source, n, args.seed)}
        )
    result = {
        "source": Path(args.source).name,
        "epoch_cost": cost,
        "accuracy": accuracy,
        "wall_s": round(time.time() - start),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "probe.json").write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"\nEpoch cost on {cost['examples']} examples (median of {cost['rounds']} rounds; feature pass once: "
        f"{cost['feature_pass_s']:.1f}s for train + validation + test)\n"
    )
    print("| | s / epoch | vs fine-tune epoch |\n|---|---|---|")
    for name, t in cost["seconds"].items():
        print(f"| {name} | {t:.2f} | {cost['ratio_to_fine_tune'][name]:.3f}x |")
    print("\n| labels | probe test acc | logistic regression test acc | difference |\n|---|---|---|---|")
    for row in accuracy:
        print(
            f"| {row['labels']:,} | {row['probe']:.3f} | {row['logistic_regression']:.3f} | "
            f"{row['probe'] - row['logistic_regression']:+.3f} |"
        )


if __name__ == "__main__":
    main()
