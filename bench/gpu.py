"""GPU: BERT-base-sized MLM and GPT-2-small-sized CLM from scratch, bf16-mixed, sdpa, compile: tokens/s and MFU.

    python bench/gpu.py --model bert|gpt2 [--block N] [--batch N] [--steps 30] [--windows 3] [--runners ...]
                        [--cpu-smoke]

Runners (one after another in one process, each on the same model config, tokenizer, blocks and batch):
  transferlab        the product: trainer=gpu (bf16-mixed), compile=true, sdpa (CLM: model + chunked loss as one graph;
                     MLM: encoder + sparse head + loss as one graph on a static number of masked rows)
  transferlab_eager  the same with compile=false: does compile earn its place in the trainer=gpu preset?
  transferlab_<lever> the product with one lever changed (LEVERS): the dense [B, T, V] loss, the vocabulary padded to
                     a multiple of 64, a doubled batch, compile_mode=max-autotune-no-cudagraphs
  hf_trainer         transformers.Trainer, bf16=True, torch_compile=True, sdpa, its standard collator and group_texts
  raw_transferlab    (bert) a raw loop doing transferlab's work (same compiled model, collator, AdamW,
                     autocast): the overhead row

A GPU runs asynchronously, so a host clock read at every step means nothing: the log synchronizes at the window
edges only (after the warm-up, which holds compilation, and after each window) and reports the median window.
MFU = executed model FLOPs / s over the bf16 matmul peak measured in the same process (8192^3, random data). For
MLM the sparse head executes fewer FLOPs than a dense head: both MFU figures are given (executed, and
dense-equivalent = the FLOPs HF does for the same tokens).
--cpu-smoke runs the same code on the CPU with a tiny model (fp32, no compile) to check the script, not to measure.
"""

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, encoder_flops, model_dims, quiet, save, versions  # noqa: E402
from runners import HFTrainerRunner, TransferlabRunner, group_texts, hf_settings, load_texts, transferlab_assemble  # noqa: E402

SIZES = {  # BERT-base and GPT-2 small; vocabularies as the originals (the trained tokenizer may come out smaller)
    "bert": [
        "model=tiny_bert",
        "objective=mlm",
        "model.config.hidden_size=768",
        "model.config.num_hidden_layers=12",
        "model.config.num_attention_heads=12",
        "model.config.intermediate_size=3072",
        "tokenizer.vocab_size=30522",
        "data.max_seq_len=512",
        "data.batch_size=32",
        "objective.mlm_probability=0.15",
        "objective.whole_word_mask=false",
        "objective.sparse_head=true",
        "optimizer.lr=1e-4",
    ],
    "gpt2": [
        "model=tiny_gpt2",
        "objective=clm",
        "model.config.n_embd=768",
        "model.config.n_layer=12",
        "model.config.n_head=12",
        "model.config.n_positions=1024",
        "tokenizer.vocab_size=50257",
        "data.max_seq_len=1024",
        "data.batch_size=16",
        "optimizer.lr=1e-4",
    ],
}
SMOKE = {
    "bert": [
        "model.config.hidden_size=64",
        "model.config.num_hidden_layers=2",
        "model.config.num_attention_heads=2",
        "model.config.intermediate_size=128",
        "tokenizer.vocab_size=2000",
        "data.max_seq_len=64",
        "data.batch_size=8",
    ],
    "gpt2": [
        "model.config.n_embd=64",
        "model.config.n_layer=2",
        "model.config.n_head=2",
        "model.config.n_positions=64",
        "tokenizer.vocab_size=2000",
        "data.max_seq_len=64",
        "data.batch_size=8",
    ],
}
# One lever each, against the `transferlab` row (GPT-2's dense-loss row is the memory baseline: the loss before the
# chunked linear + cross-entropy).
LEVERS = {
    "gpt2": {
        "transferlab_dense_loss": ["objective.loss_chunk=0"],
        "transferlab_vocab64": ["model.vocab_multiple=64"],
        "transferlab_batch2x": ["data.batch_size=2x"],
        "transferlab_max_autotune": ["compile_mode=max-autotune-no-cudagraphs"],
    },
    "bert": {
        "transferlab_vocab64": ["model.vocab_multiple=64"],
        "transferlab_batch2x": ["data.batch_size=2x"],
        "transferlab_max_autotune": ["compile_mode=max-autotune-no-cudagraphs"],
    },
}
COMMON = [
    "freeze=none",
    "data=wordnet_corpus",
    "tokenizer=train",
    "model.attn_implementation=sdpa",
    "optimizer.weight_decay=0.01",
    "scheduler.name=linear",
    "scheduler.warmup_ratio=0.06",
    "trainer.gradient_clip_val=1.0",
    "trainer.max_epochs=-1",
    "trainer.limit_val_batches=0",
]


class WindowLog:
    """StepLog's interface; the device is synchronized only at the window edges: after `warmup` steps, then every
    `per_window` steps. Tokens and FLOPs are counted per step from host-side shapes (no sync)."""

    def __init__(self, warmup: int, per_window: int, windows: int, sync, per_step: tuple | None = None):
        self.edges = {warmup + k * per_window for k in range(windows + 1)}
        self.n, self.sync, self.times, self.tokens, self.flops = 0, sync, {}, [], []
        self.per_step = per_step  # (tokens, flops) of every step, when batches are collated in worker processes
        self.profiler = None

    def batch(self, tokens: int, real: int, flops: float) -> None:
        if self.per_step is None:
            self.tokens.append(tokens)
            self.flops.append(flops)

    def step_end(self) -> None:
        if self.profiler is not None:
            self.profiler.step()
        if self.per_step is not None:
            self.tokens.append(self.per_step[0])
            self.flops.append(self.per_step[1])
        self.n += 1
        if self.n in self.edges:
            self.sync()
            self.times[self.n] = time.perf_counter()

    def window(self) -> dict:
        edges = sorted(self.edges)
        if self.n < edges[-1]:
            raise RuntimeError(f"only {self.n} steps ran; the windows need {edges[-1]}")
        out = []
        for a, b in zip(edges, edges[1:]):
            seconds = self.times[b] - self.times[a]
            out.append(
                {
                    "seconds": seconds,
                    "tokens_per_s": sum(self.tokens[a:b]) / seconds,
                    "flops_per_s": sum(self.flops[a:b]) / seconds,
                }
            )
        return {"windows": out, "steps": edges[-1] - edges[0], "compile_and_warmup_s": None}


def bf16_peak_tflops(device) -> float:
    import torch

    n = 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * 20 / (start.elapsed_time(end) / 1e3) / 1e12


def raw_runner(cfg, run_dir, log_fn, flops_fn, steps: int, device: str, bf16: bool):
    """A raw loop doing transferlab's work on the GPU: the assembled (compiled in place) model, objective.step,
    collator and sampler, AdamW as TransferModule makes it (same groups and schedule), bf16 autocast, clip 1.0."""

    def run():
        import torch

        from transferlab.run.optim import schedule

        a = transferlab_assemble(cfg, run_dir)
        model, objective, policy = a.module.model.to(device), a.module.objective, a.policy
        a.module.metrics.to(device)
        model.train()
        opt, sched = cfg.optimizer, cfg.scheduler
        train_loader = a.datamodule.train_dataloader()
        optimizer = torch.optim.AdamW(
            policy.param_groups(model, opt.lr, opt.weight_decay, len(train_loader)),
            lr=opt.lr,
            betas=tuple(opt.betas),
            eps=opt.eps,
            fused=True,
        )  # as TransferModule
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, schedule(sched.name, int(sched.warmup_ratio * steps), steps)
        )
        loader = torch.utils.data.DataLoader(
            a.datamodule.datasets["train"],
            batch_sampler=train_loader.batch_sampler,
            collate_fn=objective.collator("train"),
            num_workers=cfg.data.num_workers,
            pin_memory=device == "cuda",
            persistent_workers=False,
        )
        log, params = log_fn(), [p for p in model.parameters() if p.requires_grad]
        for i, batch in enumerate(loader):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = objective.step(model, batch, "train")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.trainer.gradient_clip_val)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            log.step_end()
            log.batch(batch["input_ids"].numel(), batch["input_ids"].numel(), flops_fn(batch))
            if i + 1 == steps:
                break
        return log.window()

    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(SIZES), required=True)
    p.add_argument("--warmup", type=int, default=15, help="steps before the first window (compilation happens here)")
    p.add_argument("--steps", type=int, default=30, help="steps per window")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers, for every runner")
    p.add_argument("--runners", default=None)
    p.add_argument(
        "--block",
        type=int,
        default=None,
        help="tokens per block (default: the model's SIZES; the MFU target is BERT at 128)",
    )
    p.add_argument("--batch", type=int, default=None, help="blocks per batch (default: the model's SIZES)")
    p.add_argument("--cpu-smoke", action="store_true")
    p.add_argument("--eager", action="store_true", help="compile off for every runner (HF Trainer included)")
    p.add_argument(
        "--profile", default="", help="comma-separated runners to profile for 5 steps after the warm-up (CPU + CUDA)"
    )
    a = p.parse_args()
    quiet()
    import torch

    smoke = a.cpu_smoke
    device = "cpu" if smoke else "cuda"
    total = a.warmup + a.steps * a.windows
    sync = (lambda: None) if smoke else torch.cuda.synchronize
    profiling = {}

    def attach(log):
        if profiling.get("name"):
            from torch.profiler import ProfilerActivity, profile, schedule

            acts = [ProfilerActivity.CPU] + ([] if smoke else [ProfilerActivity.CUDA])
            log.profiler = profile(activities=acts, schedule=schedule(wait=a.warmup, warmup=2, active=5, repeat=1))
            log.profiler.__enter__()
            profiling["prof"] = log.profiler
        return log

    log_fn = lambda: attach(WindowLog(a.warmup, a.steps, a.windows, sync))  # noqa: E731
    peak = None if smoke else bf16_peak_tflops(device)
    trainer = (
        ["trainer=cpu", "trainer.precision=bf16-mixed"] if smoke else ["trainer=gpu"]
    )  # smoke: Lightning's AMP path
    shape = ([f"data.max_seq_len={a.block}"] if a.block else []) + ([f"data.batch_size={a.batch}"] if a.batch else [])
    base = [
        *SIZES[a.model],
        *(SMOKE[a.model] if smoke else []),
        *shape,
        *COMMON,
        *trainer,
        f"data.num_workers={a.workers}",
        f"task_name=bench_gpu_{a.model}",
    ]
    run_dir = WORK / f"gpu_{a.model}_run"
    t0 = time.perf_counter()
    tl = TransferlabRunner(
        [*base, f"compile={not (smoke or a.eager)}"], run_dir, a.steps * a.windows, a.warmup, None, log_fn=log_fn
    )
    first = tl.prepare()
    tokenizer, config, cfg = first.tokenizer, first.module.model.config, tl.cfg
    dims, vocab = model_dims(config), len(tokenizer)
    params = sum(p.numel() for p in first.module.model.parameters())
    n_blocks = len(first.datamodule.datasets["train"])
    del first
    mlm = a.model == "bert"
    head_params = dims["d"] * vocab + (dims["d"] * dims["d"] if mlm else 0)

    def dense_flops(batch):
        b, t = batch["input_ids"].shape
        return encoder_flops(b, t, **dims, head_rows=b * t, head_params=head_params)

    def executed_flops(batch):  # transferlab's: the sparse MLM head runs on the masked rows only (a host-side count)
        b, t = batch["input_ids"].shape
        rows = batch["masked_positions"].numel() if mlm else b * t
        return encoder_flops(b, t, **dims, head_rows=rows, head_params=head_params)

    tl.flops_fn = executed_flops
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from transferlab.config import DATA_DIR

    texts = load_texts(DATA_DIR / "wordnet_corpus" / "train.jsonl.gz")
    tokenized = texts.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"], num_proc=8)
    blocks = tokenized.map(group_texts(cfg.data.max_seq_len), batched=True, num_proc=8)
    if mlm:
        o = cfg.objective
        collator = DataCollatorForLanguageModeling(
            tokenizer,
            mlm_probability=o.mlm_probability,
            mask_replace_prob=o.mask_replace_prob,
            random_replace_prob=o.random_replace_prob,
        )
    else:
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    auto = AutoModelForMaskedLM if mlm else AutoModelForCausalLM
    model_fn = lambda: auto.from_config(config, attn_implementation="sdpa")  # noqa: E731
    hf_extra = {"bf16": True} if smoke else {"bf16": True, "torch_compile": not a.eager, "use_cpu": False}
    b, t = (
        cfg.data.batch_size,
        cfg.data.max_seq_len,
    )  # HF collates in its workers: every step is b x t tokens, dense head

    def hf_log():
        return attach(
            WindowLog(
                a.warmup, a.steps, a.windows, sync, per_step=(b * t, dense_flops({"input_ids": torch.empty(b, t)}))
            )
        )

    runners = {
        "transferlab": tl,
        "transferlab_eager": TransferlabRunner(
            [*base, "compile=false"], run_dir, a.steps * a.windows, a.warmup, executed_flops, log_fn=log_fn
        ),
    }
    batch = int(cfg.data.batch_size)
    for name, overrides in LEVERS[a.model].items():
        if (smoke or a.eager) and any(o.startswith("compile_mode=") for o in overrides):
            continue  # a compile mode without compiling is refused (config check)
        overrides = [o.replace("=2x", f"={2 * batch}") for o in overrides]  # twice the batch every other row uses
        runners[name] = TransferlabRunner(
            [*base, f"compile={not (smoke or a.eager)}", *overrides],
            run_dir,
            a.steps * a.windows,
            a.warmup,
            executed_flops,
            log_fn=log_fn,
        )
    if mlm:
        runners["raw_transferlab"] = raw_runner(cfg, run_dir, log_fn, executed_flops, total, device, bf16=True)
    # Last: HF's TrainingArguments switch torch to the new TF32 API, which Lightning's GPU set-up then refuses.
    runners["hf_trainer"] = HFTrainerRunner(
        model_fn,
        blocks,
        collator,
        a.steps * a.windows,
        a.warmup,
        dense_flops,
        hf_settings(cfg),
        log_fn=hf_log,
        num_workers=a.workers,
        **hf_extra,
    )
    if a.runners:
        runners = {k: v for k, v in runners.items() if k in a.runners.split(",")}
    print(
        f"setup {time.perf_counter() - t0:.0f}s; {a.model}: {params / 1e6:.1f}M params, "
        f"vocab {vocab}, {n_blocks} transferlab "
        f"blocks, {len(blocks)} HF blocks; block {cfg.data.max_seq_len} x batch {cfg.data.batch_size}; "
        f"bf16 matmul peak {peak and round(peak)} TFLOP/s",
        flush=True,
    )

    rows = []
    for name, run in runners.items():
        start = time.perf_counter()
        if not smoke:
            torch.cuda.reset_peak_memory_stats()
        profiling.clear()
        profiling["name"] = name if name in a.profile.split(",") else None
        try:
            result = run()
        except Exception as e:  # one runner's failure must not cost the others their numbers (device time is scarce)
            import traceback

            traceback.print_exc()
            print(f"  {name}: FAILED ({type(e).__name__}: {str(e).splitlines()[0][:300]})", flush=True)
            continue
        finally:
            gc.collect()
        if not smoke:
            torch.cuda.empty_cache()
        if profiling.get("prof"):
            prof = profiling["prof"]
            prof.__exit__(None, None, None)
            key = "self_cpu_time_total" if smoke else "self_device_time_total"
            events = prof.key_averages()
            busy = sum(getattr(e, key) for e in events) / 5 / 1e3
            print(
                f"#### profile {name}: device (or CPU) busy {busy:.1f} ms per step over 5 steps\n"
                + events.table(sort_by=key, row_limit=22, max_name_column_width=60),
                flush=True,
            )
        tps = statistics.median(w["tokens_per_s"] for w in result["windows"])
        executed = statistics.median(w["flops_per_s"] for w in result["windows"])
        per_token_dense = dense_flops({"input_ids": torch.empty(1, cfg.data.max_seq_len)}) / cfg.data.max_seq_len
        row = {
            "runner": name,
            "tokens_per_s": tps,
            "windows_tokens_per_s": [round(w["tokens_per_s"]) for w in result["windows"]],
            "tflops_executed": executed / 1e12,
            "tflops_dense_equiv": tps * per_token_dense / 1e12,
            "wall_s": time.perf_counter() - start,
            "peak_mem_gib": None if smoke else torch.cuda.max_memory_allocated() / 2**30,
        }
        if peak:
            row.update(mfu_executed=row["tflops_executed"] / peak, mfu_dense_equiv=row["tflops_dense_equiv"] / peak)
        rows.append(row)
        print(
            f"  {name}: {tps:,.0f} tokens/s (windows {row['windows_tokens_per_s']}), "
            f"{row['wall_s']:.0f}s with setup and compile"
            + (
                f", MFU {100 * row['mfu_executed']:.1f}% executed / "
                f"{100 * row['mfu_dense_equiv']:.1f}% dense-equivalent, "
                f"peak mem {row['peak_mem_gib']:.1f} GiB"
                if peak
                else ""
            ),
            flush=True,
        )

    peer = next((r for r in rows if r["runner"] == "hf_trainer"), rows[0])
    lines = [
        f"### GPU {a.model}: {params / 1e6:.0f}M params, vocab {vocab}, block {cfg.data.max_seq_len}, "
        f"batch {cfg.data.batch_size}, bf16-mixed, sdpa; bf16 peak {peak and round(peak)} TFLOP/s",
        "",
        "| runner | tokens/s (median of windows) | ratio vs hf_trainer | MFU executed | "
        "MFU dense-equivalent | peak GiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mfu = f"{100 * r['mfu_executed']:.1f}% | {100 * r['mfu_dense_equiv']:.1f}%" if peak else "- | -"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] else "-"
        lines.append(
            f"| {r['runner']} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / peer['tokens_per_s']:.2f}x | "
            f"{mfu} | {mem} |"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    name = f"gpu_{a.model}" + ("_smoke" if smoke else "")
    device_name = "cpu" if smoke else torch.cuda.get_device_name()
    path = save(
        name,
        {
            "versions": versions(),
            "device": device_name,
            "args": vars(a),
            "peak_tflops": peak,
            "params": params,
            "vocab": vocab,
            "rows": rows,
            "table": text,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
