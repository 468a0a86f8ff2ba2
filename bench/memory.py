"""Peak memory of one training step with and without model.gradient_checkpointing, on the CPU.

Each setting runs in a fresh process (ru_maxrss is a process's high-water mark; tracemalloc does not see torch's
allocations), alternating off/on for --rounds rounds. The model is a BERT for masked LM built from config at a size
where activations dominate (long sequences, a large batch, a few layers); the switch is the one the config flips
(transferlab.models.build.enable_gradient_checkpointing). Reported: the peak RSS of the process, the RSS before the
step (imports, weights, batch), the step's own growth (peak minus before), and the ratios on/off.

    python bench/memory.py                      # the default size (docs/benchmarks.md)
    python bench/memory.py --batch 8 --seq 256  # smaller
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(args) -> dict:
    """One forward and backward in this process; the peak RSS before and after it."""
    import time

    import torch
    from transformers import BertConfig, BertForMaskedLM

    from transferlab.models.build import enable_gradient_checkpointing

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=args.seq,
    )
    model = BertForMaskedLM(config)
    if args.checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    ids = torch.randint(5, args.vocab, (args.batch, args.seq))
    labels = torch.where(torch.rand(args.batch, args.seq) < 0.15, ids, -100)
    before = _rss_mb()
    start = time.perf_counter()
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    loss.backward()
    seconds = time.perf_counter() - start
    return {"before_mb": before, "peak_mb": _rss_mb(), "step_s": seconds, "loss": float(loss)}


def run(args, checkpointing: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", *(["--checkpointing"] if checkpointing else [])]
    for key in ("layers", "hidden", "heads", "seq", "batch", "vocab", "threads"):
        cmd += [f"--{key}", str(getattr(args, key))]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    results = {False: [], True: []}
    for _ in range(args.rounds):
        for checkpointing in (False, True):
            results[checkpointing].append(run(args, checkpointing))
    med = {
        c: {k: statistics.median(r[k] for r in rs) for k in ("before_mb", "peak_mb", "step_s")}
        for c, rs in results.items()
    }
    for setting in med.values():
        setting["step_mb"] = setting["peak_mb"] - setting["before_mb"]
    losses = {c: {round(r["loss"], 5) for r in rs} for c, rs in results.items()}
    print(
        f"BERT MLM, {args.layers} layers, hidden {args.hidden}, {args.heads} heads, batch {args.batch} x seq "
        f"{args.seq}, {args.threads} threads; median of {args.rounds} fresh processes each"
    )
    print(f"{'gradient_checkpointing':<24}{'peak RSS MB':>12}{'before step':>13}{'step growth':>13}{'step s':>8}")
    for c, m in med.items():
        row = f"{str(c).lower():<24}{m['peak_mb']:>12.0f}{m['before_mb']:>13.0f}{m['step_mb']:>13.0f}"
        print(f"{row}{m['step_s']:>8.2f}")
    off, on = med[False], med[True]
    print(f"ratio on/off: peak {on['peak_mb'] / off['peak_mb']:.2f}, step growth {on['step_mb'] / off['step_mb']:.2f}")
    print(f"same loss both ways: {losses[False] == losses[True]} ({sorted(losses[False])})")


if __name__ == "__main__":
    main()
