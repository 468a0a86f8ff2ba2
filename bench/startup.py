"""Startup: launch to first optimizer step, import cost, --help and config-error latency, cached-tokenization re-run.

1. `python -X importtime -c "import transferlab.train"`: total, heaviest imports, and that torch & co. stay out.
2. `transferlab-train --help` and `transferlab-train optimizer.lr=abc` (a config error): wall time (median of 3),
   exit code, and whether torch was imported (checked with -X importtime).
3. `transferlab-train experiment=quickstart` to the end of its first optimizer step (bench/_first_step.py wraps
   the product's functions with timers and exits there): once with an empty datasets cache (cold: empty datasets and
   tokenizer caches), then 3 times warm (median), and once more warm into the same run dir (the tokenizer is loaded
   instead of trained).
   Data prep = load_splits + build_tokenizer + prepare_splits.
4. `python -X importtime` of the launch: which packages the first step pays for.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, WORK, ForeignLoad, save  # noqa: E402

PY = sys.executable
TRAIN = str(Path(PY).parent / "transferlab-train")
HEAVY = ("torch", "lightning", "transformers", "datasets", "wandb", "torchmetrics", "numpy")
DATA_PREP = ("check_inputs (load splits, labels)", "build_tokenizer", "prepare_splits (tokenize + pack/bucket)")


def importtime(args: list, env=None) -> dict:
    """Per top-level package: cumulative import time (s) of its first import, from python -X importtime."""
    out = subprocess.run([PY, "-X", "importtime", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    packages = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (x.strip() for x in line[len("import time:") :].split("|"))
        if not cumulative.isdigit():
            continue
        top = name.split(".")[0]
        if name == top or name == "transferlab.train":  # a module's cumulative time includes all it pulled in
            packages[name] = packages.get(name, 0) + int(cumulative) / 1e6
    return packages


def timed_cli(args: list, repeats: int = 3) -> dict:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run([TRAIN, *args], capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    heavy = importtime(["-m", "transferlab.train", *args])
    return {
        "median_s": statistics.median(times),
        "times_s": [round(t, 3) for t in times],
        "exit_code": result.returncode,
        "stderr_lines": len(result.stderr.strip().splitlines()),
        "stderr": result.stderr.strip()[:300],
        "heavy_imported": sorted(p for p in HEAVY if p in heavy),
    }


def launch(overrides: list, env: dict) -> dict:
    """One real launch to the first optimizer step; phase times in seconds since spawn."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = {**env, "BENCH_T0": repr(time.time()), "BENCH_PROBE_OUT": out}
    with ForeignLoad() as load:
        proc = subprocess.run(
            [PY, str(Path(__file__).parent / "_first_step.py"), *overrides],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
    if proc.returncode != 0 or not os.path.getsize(out):
        raise RuntimeError(f"launch failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["data_prep_s"] = round(sum(result["spans"].get(k, 0.0) for k in DATA_PREP), 3)
    result["foreign_cores"] = round(load.cores, 2)
    return result


def main():
    quick = "--quick" in sys.argv[1:]
    repeats = 2 if quick else 3
    report = {}
    lib = importtime(["-c", "import transferlab.train"])
    report["import_train"] = {
        "total_s": round(lib.get("transferlab.train", 0.0), 3),
        "top": sorted(((k, round(v, 3)) for k, v in lib.items() if k != "transferlab.train"), key=lambda kv: -kv[1])[
            :6
        ],
        "heavy_imported": sorted(p for p in HEAVY if p in lib),
    }
    report["help"] = timed_cli(["--help"], repeats)
    report["config_error"] = timed_cli(["optimizer.lr=abc"], repeats)

    base = WORK / "startup"
    shutil.rmtree(base, ignore_errors=True)
    cache = base / "hf_datasets_cache"  # private datasets and transferlab caches: the first launch is really cold
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": str(cache),
        "TRANSFERLAB_CACHE": str(base / "transferlab_cache"),
        "TRANSFERLAB_ROOT": str(base),
    }
    overrides = ["experiment=quickstart"]
    cold = launch([*overrides, f"hydra.run.dir={base}/cold"], env)
    warm = [launch([*overrides, f"hydra.run.dir={base}/warm{i}"], env) for i in range(repeats)]
    same_dir = launch([*overrides, f"hydra.run.dir={base}/warm0"], env)
    launch_imports = importtime(
        [str(Path(__file__).parent / "_first_step.py"), *overrides, f"hydra.run.dir={base}/imports"],
        env={**env, "BENCH_T0": repr(time.time()), "BENCH_PROBE_OUT": str(base / "imports.json")},
    )
    report["launch"] = {
        "cold": cold,
        "warm": warm,
        "same_run_dir": same_dir,
        "first_step_warm_median_s": statistics.median(w["marks"]["first_step"] for w in warm),
        "data_prep_warm_median_s": statistics.median(w["data_prep_s"] for w in warm),
        "imports_s": sorted(((k, round(v, 2)) for k, v in launch_imports.items() if v > 0.05), key=lambda kv: -kv[1])[
            :10
        ],
    }
    print(text(report), flush=True)
    save("startup", {"report": report, "table": text(report)})


def text(r: dict) -> str:
    h, e, lw, imp = r["help"], r["config_error"], r["launch"], r["import_train"]
    warm = lw["warm"]
    phases = lambda x: ", ".join(f"{k} {v:.2f}s" for k, v in x["spans"].items())  # noqa: E731
    lines = [
        "### Startup",
        "",
        "| what | measured | target |",
        "|---|---|---|",
        f"| launch -> first optimizer step, `transferlab-train experiment=quickstart`, "
        f"warm cache (median of {len(warm)}) | "
        f"{lw['first_step_warm_median_s']:.1f} s | <= 12 s |",
        f"| the same, cold (empty datasets and tokenizer caches) | {lw['cold']['marks']['first_step']:.1f} s | - |",
        f"| data prep on a re-run with cached tokenization (new run dir: tokenizer from the cache) | "
        f"{lw['data_prep_warm_median_s']:.2f} s | <= 1 s |",
        f"| data prep on a re-run into the same run dir (tokenizer loaded) | "
        f"{lw['same_run_dir']['data_prep_s']:.2f} s | <= 1 s |",
        f"| data prep, cold | {lw['cold']['data_prep_s']:.2f} s | - |",
        f"| `transferlab-train --help` (median of {len(h['times_s'])}) | {h['median_s']:.2f} s, exit {h['exit_code']}, "
        f"heavy imports: {h['heavy_imported'] or 'none'} | before torch |",
        f"| `transferlab-train optimizer.lr=abc` (median of {len(e['times_s'])}) | "
        f"{e['median_s']:.2f} s, exit {e['exit_code']}, "
        f"{e['stderr_lines']} line(s), heavy imports: {e['heavy_imported'] or 'none'} | before torch |",
        f'| `python -X importtime -c "import transferlab.train"` | {imp["total_s"]:.3f} s; '
        f"heavy imports: {imp['heavy_imported'] or 'none'} | - |",
        "",
        f"config error says: `{e['stderr']}`",
        f"import transferlab.train, top packages (s): {imp['top']}",
        f"launch (warm, run 1) marks (s since spawn): {warm[0]['marks']}",
        f"launch (warm, run 1) first import of (s since spawn): {warm[0]['first_import']}",
        f"launch (warm, run 1) phases: {phases(warm[0])}",
        f"launch (cold) phases: {phases(lw['cold'])}",
        f"launch (same run dir) phases: {phases(lw['same_run_dir'])}",
        f"imports paid before the first step (s, cumulative per top-level package): {lw['imports_s']}",
        f"foreign load during launches (cores): cold {lw['cold']['foreign_cores']}, "
        f"warm {[w['foreign_cores'] for w in warm]}, "
        f"same dir {lw['same_run_dir']['foreign_cores']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
