"""Re-measure the numbers README.md and docs/ quote, from this checkout, with nothing reused.

    python bench/remeasure.py [--only quickstart,finetune,...] [--out DIR] [--list]

Each preset runs as its README command, `transferlab-train experiment=NAME`, in a fresh outputs dir and a fresh
cache under --out (so nothing a previous run prepared or exported is reused). A preset that starts from another's
export (finetune from pretrain_mlm, definitions from pretrain_t5, ...) runs after it, in the same outputs dir. The
table printed at the end (and written to OUT/remeasure.md, with OUT/remeasure.json) gives each run's test metrics,
its monitor and its fit time, with the commit, the date and the cores it ran on: what a doc page cites as "when and
where". The whole list takes hours on 2 CPU cores; --only picks presets (their sources are added).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# preset -> (the presets whose exports it starts from, the page that quotes it)
PRESETS = {
    "quickstart": ((), "README.md"),
    "pretrain_mlm": ((), "README.md, docs/pretraining.md"),
    "finetune": (("pretrain_mlm",), "README.md, docs/classification.md"),
    "probe": (("pretrain_mlm",), "README.md, docs/classification.md"),
    "lora": (("pretrain_mlm",), "docs/freeze.md"),
    "pos": ((), "docs/tagging.md"),
    "pos_finetune": (("pretrain_mlm",), "docs/tagging.md"),
    "qa": ((), "docs/qa.md"),
    "qa_finetune": (("pretrain_mlm",), "docs/qa.md"),
    "pretrain_clm": ((), "docs/text2text.md"),
    "pretrain_t5": ((), "docs/text2text.md"),
    "definitions": (("pretrain_t5",), "docs/text2text.md"),
    "definitions_sft": (("pretrain_clm",), "docs/text2text.md"),
    "translate": ((), "docs/text2text.md"),
}


def order(names: list) -> list:
    """The presets asked for, each after the presets it starts from."""
    done = []

    def visit(name):
        for source in PRESETS[name][0]:
            visit(source)
        if name not in done:
            done.append(name)

    for name in names:
        visit(name)
    return done


def newest_metrics(outputs: Path, task: str) -> dict:
    runs = sorted((outputs / task / "runs").glob("*/metrics.json"))
    return json.loads(runs[-1].read_text()) if runs else {"status": "no run"}


def measure(name: str, outputs: Path, cache: Path) -> dict:
    command = ["transferlab-train", f"experiment={name}", f"paths.output_dir={outputs}", "logger=csv"]
    env = {**os.environ, "TRANSFERLAB_CACHE": str(cache)}
    print(f"\n=== {' '.join(command)}", flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, env=env)
    wall = time.perf_counter() - start
    metrics = newest_metrics(outputs, name)  # every preset's task_name is its own name
    picked = {k: v for k, v in metrics.items() if k.startswith("test/") and isinstance(v, (int, float))}
    return {
        "preset": name,
        "rc": code,
        "wall_s": round(wall, 1),
        "status": metrics.get("status"),
        "fit_s": metrics.get("time/fit_s"),
        **picked,
    }


def table(rows: list, where: dict) -> str:
    head = [
        f"Measured {date.today()} at commit {where['commit']} on {where['cores']} CPU cores, "
        "each preset in its own process, "
        "fresh outputs and cache.",
        "",
        "| preset | status | fit s | test metrics | quoted in |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        scores = ", ".join(f"{k[5:]} {v:.4g}" for k, v in r.items() if k.startswith("test/"))
        fit = f"{r['fit_s']:.0f}" if isinstance(r.get("fit_s"), (int, float)) else "-"
        head.append(f"| `{r['preset']}` | {r['status']} | {fit} | {scores} | {PRESETS[r['preset']][1]} |")
    return "\n".join(head) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated presets (their sources are added)")
    parser.add_argument("--out", default=None, help="where the runs go (default: a new temp dir)")
    parser.add_argument("--list", action="store_true", help="print the presets in run order and stop")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        print(f"error: unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    names = order(names)
    if args.list:
        print("\n".join(names))
        return 0
    out = Path(args.out or tempfile.mkdtemp(prefix="remeasure-")).resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    where = {"commit": commit or "unknown", "cores": os.cpu_count()}
    rows = [measure(name, out / "outputs", out / "cache") for name in names]
    text = table(rows, where)
    (out / "remeasure.md").write_text(text)
    (out / "remeasure.json").write_text(json.dumps({**where, "date": str(date.today()), "runs": rows}, indent=1))
    print("\n" + text + f"\n(written to {out}/remeasure.md)")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
