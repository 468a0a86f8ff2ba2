"""Fine-tuning defaults for runs that start from a checkpoint: the learning-rate grid against the product default.

    python bench/init_defaults.py --model DIR [--model DIR2] [--tasks topics,pairs] [--labels 500,2000]
        [--lrs 2e-5,5e-5,1e-4,2e-4,5e-4,1e-3] [--epochs 3] [--seeds 42] [--threads 1]

Every run is `transferlab-train` as a user types it (a subprocess, so each run is a fresh process): a local
HF-format checkpoint (`model=pretrained tokenizer=pretrained model.name_or_path=DIR`), an embedded labeled task cut
to N train labels (`data.max_train_samples`), the product's other defaults. One run per grid LR
(`optimizer.lr=...`), and one with **no LR override** (the `default` row: what the product picks for that init).
The table gives validation accuracy (what a choice may read) and test accuracy (what the target reads): the
default's test accuracy as a share of the best grid LR's, the best picked by validation and by test.

Results: outputs/bench/results/init_defaults.json (and the runs under outputs/bench/init_defaults/).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, WORK  # noqa: E402

TASKS = {  # name -> the overrides that pick a labeled task for objective=classification
    "topics": ["data=wordnet_topics"],  # WordNet glosses -> lexicographer topic (10 classes)
    "pairs": ["data=wordnet_pairs"],  # gloss pairs -> same sense or not (sentence pairs)
    "mansections": "csv",  # a user's CSV: a manual page's DESCRIPTION -> its section (written by mansections())
}
ISSUE_GRID = ("2e-5", "5e-5", "1e-4", "2e-4", "5e-4", "1e-3")  # the target's grid: default >= 98% of its best
SECTIONS = {"1": "1 commands", "2": "2 system calls", "3": "3 library", "7": "7 overviews"}  # 4, 5, 6, 8: other


def mansections() -> list:
    """`data=manpages_summary` as a user's labeled CSV: the DESCRIPTION text and the page's manual section (1, 2, 3,
    7; the rare 4, 5, 6 and 8 as "other"), 2,031 / 240 / 263 rows, written once under outputs/bench/."""
    import csv
    import gzip

    root = WORK / "init_defaults" / "mansections"
    for split in ("train", "validation", "test"):
        path = root / f"{split}.csv"
        if path.is_file():
            continue
        root.mkdir(parents=True, exist_ok=True)
        rows = [json.loads(line) for line in gzip.open(Path(__file__).parent.parent / "data" / "manpages_summary" /
                                                          f"{split}.jsonl.gz", "rt")]  # fmt: skip
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "section"])
            for r in rows:
                w.writerow([r["source"], SECTIONS.get(r["page"].rsplit(".", 1)[1][:1], "other")])
        tmp.rename(path)
    return ["data=files", *(f"data.{s}={root / s}.csv" for s in ("train", "validation", "test")),
            "data.text_column=text", "data.label_column=section"]  # fmt: skip


def overrides(model: str, task: str, labels: int, lr: str | None, epochs: int, seed: int, out: Path) -> list:
    return [
        "model=pretrained",
        "tokenizer=pretrained",
        f"model.name_or_path={Path(model).resolve()}",
        *(mansections() if TASKS[task] == "csv" else TASKS[task]),
        f"data.max_train_samples={labels}",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        "logger=none",
        "export=false",
        "callbacks.progress_bar=false",
        f"hydra.run.dir={out}",
        "overwrite=true",
    ] + ([f"optimizer.lr={lr}"] if lr else [])


def run(model: str, task: str, labels: int, lr: str | None, epochs: int, seed: int, threads: int) -> dict:
    """One run's metrics.json, plus the LR it trained at (the product's choice in the default row)."""
    from transferlab.cli.front import compose

    tag = f"{Path(model).name}/{task}_{labels}_{lr or 'default'}_e{epochs}_s{seed}"
    out = WORK / "init_defaults" / tag
    metrics = out / "metrics.json"
    args = overrides(model, task, labels, lr, epochs, seed, out)
    lr_used = compose(args).optimizer.lr
    if metrics.is_file() and json.loads(metrics.read_text()).get("status") == "ok":
        return json.loads(metrics.read_text()) | {"lr_used": lr_used}
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    cli = [sys.executable, "-m", "transferlab.train", *args]
    proc = subprocess.run(cli, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not metrics.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"run {tag} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return json.loads(metrics.read_text()) | {"lr_used": lr_used, "wall_s": time.perf_counter() - start}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="a local HF-format checkpoint dir (repeatable)")
    p.add_argument("--tasks", default="topics,pairs")
    p.add_argument("--labels", default="500,2000", help="train labels per run (data.max_train_samples)")
    p.add_argument("--lrs", default=",".join(ISSUE_GRID))
    p.add_argument("--epochs", type=int, default=3, help="trainer.max_epochs (the product default is 3)")
    p.add_argument("--seeds", default="42")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", action="store_true", help="only the table, from the runs already on disk")
    a = p.parse_args()
    if not a.report:
        for model in a.model:
            for task in a.tasks.split(","):
                for labels in map(int, a.labels.split(",")):
                    for seed in map(int, a.seeds.split(",")):
                        for lr in [None, *a.lrs.split(",")]:
                            m = run(model, task, labels, lr, a.epochs, seed, a.threads)
                            print(f"{Path(model).name} {task} {labels} labels, {a.epochs} epochs, seed {seed}, "
                                  f"lr {lr or 'default'} ({m['lr_used']:g}): val acc {m.get('val/acc'):.4f}, "
                                  f"test acc {m.get('test/acc'):.4f}", flush=True)  # fmt: skip
    rows = on_disk({Path(m).name: m for m in a.model})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "init_defaults.json").write_text(json.dumps({"rows": rows}, indent=1))
    print(table(rows))


def on_disk(models: dict) -> list:
    """Every finished run under outputs/bench/init_defaults/ of the named checkpoints, as table rows."""
    from transferlab.cli.front import compose

    rows = []
    for metrics in sorted((WORK / "init_defaults").glob("*/*/metrics.json")):
        m = json.loads(metrics.read_text())
        model, (task, labels, lr, epochs, seed) = metrics.parent.parent.name, metrics.parent.name.split("_")
        if m.get("status") != "ok" or model not in models:
            continue
        labels, epochs, seed = int(labels), int(epochs[1:]), int(seed[1:])
        args = overrides(models[model], task, labels, None if lr == "default" else lr, epochs, seed, metrics.parent)
        row = {"model": model, "task": task, "labels": labels, "epochs": epochs, "seed": seed, "lr": lr,
               "lr_used": compose(args).optimizer.lr, "val_acc": m["val/acc"], "test_acc": m["test/acc"],
               "fit_s": m.get("time/fit_s")}  # fmt: skip
        rows.append(row)
    return rows


def table(rows: list) -> str:
    lines = [
        "| model | task | labels | epochs | default LR: val / test | best LR by val (test) | best LR by test (test) "
        "| default / best test | default / best test of the grid 2e-5..1e-3 |",
        "|---|---|---:|---:|---|---|---|---:|---:|",
    ]
    groups = sorted({(r["model"], r["task"], r["labels"], r["epochs"], r["seed"]) for r in rows})
    for model, task, labels, epochs, seed in groups:
        g = [r for r in rows if (r["model"], r["task"], r["labels"], r["epochs"], r["seed"]) ==
             (model, task, labels, epochs, seed)]  # fmt: skip
        default = next((r for r in g if r["lr"] == "default"), None)
        grid = [r for r in g if r["lr"] != "default"]
        if not default or not grid:
            continue
        by_val = max(grid, key=lambda r: r["val_acc"])
        by_test = max(grid, key=lambda r: r["test_acc"])
        narrow = [r for r in grid if r["lr"] in ISSUE_GRID]
        best_narrow = max(r["test_acc"] for r in narrow) if narrow else float("nan")
        lines.append(
            f"| {model} | {task} | {labels} | {epochs} "
            f"| {default['lr_used']:g}: {default['val_acc']:.3f} / {default['test_acc']:.3f} "
            f"| {by_val['lr']} ({by_val['test_acc']:.3f}) | {by_test['lr']} ({by_test['test_acc']:.3f}) "
            f"| {default['test_acc'] / by_test['test_acc']:.1%} | {default['test_acc'] / best_narrow:.1%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
