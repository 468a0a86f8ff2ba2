"""`make bench`: every comparison, each in its own process, then one summary against the issue's targets.

    python bench/run_all.py [--quick] [--threads N] [--repeats N] [--only mlm,classification,...]

Results: outputs/bench/results/<name>.json and summary.md. On a shared 2-core box, --threads 1 leaves a core to the
neighbours and keeps the numbers stable (see docs/benchmarks.md).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS  # noqa: E402

BENCHES = ("mlm", "classification", "clm", "startup", "compile", "tagging", "seq2seq")
GPU_BENCHES = {"gpu_bert": ["--model", "bert"], "gpu_gpt2": ["--model", "gpt2"]}  # run where a CUDA GPU is present


def run(name: str, passthrough: list) -> float:
    start = time.perf_counter()
    if name in GPU_BENCHES:
        script, extra = "gpu", GPU_BENCHES[name]
    else:
        script, extra = (
            name,
            [a for a in passthrough if name != "startup" or a == "--quick"],
        )  # startup takes only --quick
    print(f"\n=== {name} ===", flush=True)
    code = subprocess.call([sys.executable, str(Path(__file__).parent / f"{script}.py"), *extra])
    if code != 0:
        print(f"{name} failed with exit code {code}", flush=True)
    return time.perf_counter() - start


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def row(rows: list, name: str) -> dict:
    return next(r for r in rows if r["runner"] == name)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(started: float) -> str:
    lines = ["| what | measured | target | verdict |", "|---|---|---|---|"]
    mlm, cls, clm, startup, comp, tag, s2s = (load(n) for n in BENCHES)
    if mlm:
        t, h = row(mlm["rows"], "transferlab"), row(mlm["rows"], "hf_trainer")
        lines.append(
            f"| MLM tokens/s vs HF Trainer | {t['tokens_per_s']:,.0f} vs {h['tokens_per_s']:,.0f}: {t['ratio']:.2f}x | "
            f">= 2.0x | {verdict(t['ratio'] >= 2.0)} |"
        )
    if cls:
        t, h = row(cls["rows"], "transferlab"), row(cls["rows"], "hf_trainer")
        lines.append(
            f"| Classification non-pad tokens/s vs HF Trainer (dynamic padding) | "
            f"{t['tokens_per_s']:,.0f} vs {h['tokens_per_s']:,.0f}: {t['ratio']:.2f}x; "
            f"pad share {100 * t['pad_share']:.1f}% vs {100 * h['pad_share']:.1f}% | "
            f">= 1.3x | {verdict(t['ratio'] >= 1.3)} |"
        )
    if tag:
        t, h = row(tag["rows"], "transferlab"), row(tag["rows"], "hf_trainer")
        lines.append(
            f"| Tagging non-pad tokens/s vs HF Trainer (DataCollatorForTokenClassification) | "
            f"{t['tokens_per_s']:,.0f} vs "
            f"{h['tokens_per_s']:,.0f}: {t['ratio']:.2f}x | >= 1.3x | {verdict(t['ratio'] >= 1.3)} |"
        )
    if s2s:
        t, h = row(s2s["rows"], "transferlab"), row(s2s["rows"], "hf_seq2seq_trainer")
        lines.append(
            f"| Seq2seq non-pad tokens/s vs Seq2SeqTrainer (DataCollatorForSeq2Seq) | {t['tokens_per_s']:,.0f} vs "
            f"{h['tokens_per_s']:,.0f}: {t['ratio']:.2f}x | >= 1.3x | {verdict(t['ratio'] >= 1.3)} |"
        )
        e = s2s["evaluation"]
        lines.append(
            f"| Evaluation with generation vs predict_with_generate | {e['examples_per_s']['transferlab']:.1f} vs "
            f"{e['examples_per_s']['hf_seq2seq_trainer']:.1f} examples/s: {e['ratio']:.2f}x | "
            f">= 1.0x | {verdict(e['ratio'] >= 1.0)} |"
        )
        c = s2s["span_corruption_collator"]
        lines.append(
            f"| Span corruption collator share of a step | {100 * c['share']:.1f}% | small | "
            f"{verdict(c['share'] <= 0.1)} |"
        )
    if clm:
        t, h = row(clm["rows"], "transferlab"), row(clm["rows"], "hf_trainer")
        lines.append(
            f"| CLM tokens/s vs HF Trainer (group_texts) | {t['tokens_per_s']:,.0f} vs {h['tokens_per_s']:,.0f}: "
            f"{t['ratio']:.2f}x | >= 1.0x | {verdict(t['ratio'] >= 1.0)} |"
        )
    for name, r in (("MLM", mlm), ("classification", cls), ("CLM", clm), ("tagging", tag)):
        if r:
            lines.append(
                f"| Overhead vs raw PyTorch loop, {name} | {100 * r['overhead']:.1f}% "
                f"(median of {len(r['rounds'])} per-round "
                f"ratios) | <= 3% | {verdict(r['overhead'] <= 0.03)} |"
            )
    if mlm and clm:
        lm = max(row(mlm["rows"], "transferlab")["pad_share"], row(clm["rows"], "transferlab")["pad_share"])
        lines.append(f"| Pad-token share, LM (packing) | {100 * lm:.1f}% | 0% | {verdict(lm == 0)} |")
    if cls:
        share = cls["epoch_pad_share"]["transferlab (bucketed)"]
        lines.append(
            f"| Pad-token share, classification (a whole epoch) | {100 * share:.1f}% (HF random: "
            f"{100 * cls['epoch_pad_share']['hf_trainer (random, pad to longest)']:.1f}%) | "
            f"<= 10% | {verdict(share <= 0.10)} |"
        )
    if startup:
        s = startup["report"]
        first, prep = s["launch"]["first_step_warm_median_s"], s["launch"]["data_prep_warm_median_s"]
        same = s["launch"]["same_run_dir"]["data_prep_s"]
        lines.append(
            f"| Launch to first optimizer step (quickstart, warm) | {first:.1f} s | <= 12 s | {verdict(first <= 12)} |"
        )
        lines.append(
            f"| Re-run data prep, cached tokenization (new run dir / same run dir) | {prep:.2f} s / {same:.2f} s | "
            f"<= 1 s | {verdict(prep <= 1)} |"
        )
        for key, label in (("help", "--help"), ("config_error", "config error (optimizer.lr=abc)")):
            c = s[key]
            before = not c["heavy_imported"]
            lines.append(
                f"| `transferlab-train {label}` | {c['median_s']:.2f} s, exit {c['exit_code']}, "
                f"torch imported: {not before} | before torch | {verdict(before)} |"
            )
    if comp:
        for name, r in comp["results"].items():
            if "error" in r:
                lines.append(f"| torch.compile (inductor, CPU), {name} | failed: {r['error'][:120]} | report | - |")
            else:
                c = row(r["rows"], f"{name}_compiled")
                said = (
                    "no-op: the compiled module is never called"
                    if not any(r["graphs"])
                    else ("wins" if c["ratio_min"] > 1.0 else "no win")
                )
                lines.append(
                    f"| torch.compile (inductor, CPU), {name} | {c['ratio']:.2f}x eager "
                    f"[{c['ratio_min']:.2f}-{c['ratio_max']:.2f}]; "
                    f"+{r['first_call_extra_s']:.0f} s first call; graphs per call {r['graphs']} | report | {said} |"
                )
    for name in GPU_BENCHES:
        r = load(name)
        if r is None:
            lines.append(
                f"| GPU, {name[4:]} | not measured here (no CUDA GPU); docs/benchmarks.md has H100 rows | - | - |"
            )
            continue
        hf = row(r["rows"], "hf_trainer") if any(x["runner"] == "hf_trainer" for x in r["rows"]) else None
        for x in r["rows"]:
            ratio = f", {x['tokens_per_s'] / hf['tokens_per_s']:.2f}x HF Trainer" if hf else ""
            lines.append(
                f"| GPU ({r['device']}), {name[4:]}, {x['runner']} | {x['tokens_per_s']:,.0f} tokens/s{ratio}; MFU "
                f"{100 * x['mfu_executed']:.1f}% executed, {100 * x['mfu_dense_equiv']:.1f}% dense-equivalent | "
                f"{'MFU >= 35% (BERT MLM)' if name == 'gpu_bert' else 'report'} | - |"
            )
    dated = ", ".join(
        f"{n} {r['date']} ({r.get('args', {}).get('threads', '-')} threads)"
        for n, r in zip(BENCHES, (mlm, cls, clm, startup, comp, tag))
        if r
    )
    lines.append(f"\nresults from: {dated}; wall time of this run: {time.perf_counter() - started:.0f} s")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of {', '.join([*BENCHES, *GPU_BENCHES])} "
        "(default: all; the GPU ones only where CUDA is available)",
    )
    a = p.parse_args()
    passthrough = (
        (["--quick"] if a.quick else [])
        + (["--threads", str(a.threads)] if a.threads else [])
        + (["--repeats", str(a.repeats)] if a.repeats else [])
    )
    started = time.perf_counter()
    names = a.only.split(",") if a.only else [*BENCHES, *(GPU_BENCHES if cuda_available() else [])]
    wall = {name: run(name, passthrough) for name in names}
    text = summary(started) + "\nper bench (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items())
    print("\n=== summary ===\n" + text)
    (RESULTS / "summary.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
