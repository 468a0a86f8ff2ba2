"""CLM loss at a 50k vocabulary on the CPU: peak RSS and step time with the chunked linear + cross-entropy vs dense.

    python bench/lm_loss.py [--rounds 3] [--steps 4] [--batch 16] [--block 512] [--threads N]

One training step (forward, backward) of a GPT-2-shaped decoder (2 layers, d 128, vocab 50,257) on a batch of
batch x block tokens, so that the [tokens, vocab] logits dominate memory. Runners:
  hf_loss       transformers' own: model(input_ids, labels=input_ids).loss (the peer)
  dense         transferlab with objective.loss_chunk=0: the model's logits, then cross-entropy
  chunked_4096  transferlab: the projection and the loss together, 4,096 rows of logits at a time
  chunked_1024  the same, 1,024 rows at a time (objective.loss_chunk's default)
Each runner runs in a fresh process per round (rounds interleave the runners), so its peak RSS is the kernel's
high-water mark (ru_maxrss) of that process alone; "step peak" is that minus the RSS before the first step (the
model, batch and libraries). Time: the median step after the first. The ratio is the median of per-round ratios
against hf_loss.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, versions  # noqa: E402

RUNNERS = {"hf_loss": None, "dense": 0, "chunked_4096": 4096, "chunked_1024": 1024}
VOCAB = 50257


def child(runner: str, steps: int, batch: int, block: int, threads: int | None) -> dict:
    import resource
    import time

    import psutil
    import torch
    from omegaconf import OmegaConf
    from transformers import GPT2Config, GPT2LMHeadModel

    from transferlab.objectives.clm import CausalLM, CLMConfig

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=128, n_layer=2, n_head=2, n_positions=block, vocab_size=VOCAB))
    ids = torch.randint(0, VOCAB, (batch, block))
    chunk = RUNNERS[runner]
    if chunk is None:
        loss_fn = lambda: model(input_ids=ids, labels=ids).loss  # noqa: E731
    else:
        objective = CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=chunk)), None, range(VOCAB), None)
        loss_fn = lambda: objective.step(model, {"input_ids": ids}, "train")  # noqa: E731
    before = psutil.Process().memory_info().rss
    times, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        loss = loss_fn()
        loss.backward()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
        model.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {
        "runner": runner,
        "before_mib": before / 2**20,
        "peak_mib": peak / 2**20,
        "step_peak_mib": (peak - before) / 2**20,
        "step_s": statistics.median(times[1:]) if steps > 1 else times[0],
        "loss": losses[0],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--block", type=int, default=512)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--runners", default=",".join(RUNNERS))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.batch, a.block, a.threads)))
        return
    names = a.runners.split(",")
    rounds = []
    for r in range(a.rounds):
        results = {}
        for name in names:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                name,
                "--steps",
                str(a.steps),
                "--batch",
                str(a.batch),
                "--block",
                str(a.block),
            ]
            out = subprocess.run(
                cmd + (["--threads", str(a.threads)] if a.threads else []), capture_output=True, text=True, check=True
            )
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            row = results[name]
            print(
                f"round {r + 1} {name}: step peak {row['step_peak_mib']:,.0f} MiB (process {row['peak_mib']:,.0f}), "
                f"{row['step_s']:.2f} s/step, loss {row['loss']:.4f}",
                flush=True,
            )
        rounds.append(results)
    peer = names[0]
    rows = []
    for name in names:
        per = [rnd[name] for rnd in rounds]
        rows.append(
            {
                "runner": name,
                "step_peak_mib": statistics.median(x["step_peak_mib"] for x in per),
                "peak_mib": statistics.median(x["peak_mib"] for x in per),
                "step_s": statistics.median(x["step_s"] for x in per),
                "time_ratio_vs_peer": statistics.median(rnd[name]["step_s"] / rnd[peer]["step_s"] for rnd in rounds),
                "memory_ratio_vs_peer": statistics.median(
                    rnd[name]["step_peak_mib"] / rnd[peer]["step_peak_mib"] for rnd in rounds
                ),
                "loss": per[0]["loss"],
            }
        )
    lines = [
        f"### CLM step at vocab {VOCAB:,}: GPT-2 shape (2 layers, d 128), "
        f"batch {a.batch} x {a.block} tokens, fp32, CPU",
        "",
        f"| runner | step peak RSS (MiB) | process peak (MiB) | s/step | time vs {peer} | "
        f"step memory vs {peer} | first loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['runner']} | {r['step_peak_mib']:,.0f} | {r['peak_mib']:,.0f} | {r['step_s']:.2f} | "
            f"{r['time_ratio_vs_peer']:.2f}x | {r['memory_ratio_vs_peer']:.2f}x | {r['loss']:.4f} |"
        )
    text = "\n".join(lines)
    print(text)
    saved = save("lm_loss", {"versions": versions(), "args": vars(a), "rows": rows, "rounds": rounds, "table": text})
    print(f"saved {saved}")


if __name__ == "__main__":
    main()
