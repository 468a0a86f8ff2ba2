"""The new task shapes (sentence pairs, regression, multi-label, SQuAD v2): transferlab vs HF Trainer on the same work.

Per shape (its experiment preset; --model DIR swaps in a local HF-format checkpoint and its tokenizer):
  speed    transferlab, hf_trainer and raw_transferlab interleaved (runners.py), --steps timed steps a round: non-pad
           tokens/s and samples/s. transferlab batches by length (the preset's data.bucket_by_length); the peer is
           transformers.Trainer with DataCollatorWithPadding and a random sampler.
  quality  --quality-steps steps of each, from the same weights (two assemblies of one config, seeded alike), same
           LR, batch, warm-up, clip, weight decay and linear schedule; then both models are validated (where the
           objective tunes a threshold, it is tuned there) and tested by the same transferlab evaluation code, so
           the test metrics differ only by the training loop (sampling order and dropout noise included).
The peer trains on transferlab's own encoded train rows (the same token ids and targets): for regression the
targets standardised as transferlab trains on them (HF's run_glue would train on the raw scale, which is harder).
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, StepLog, args, interleave, quiet, save, versions  # noqa: E402
from runners import (  # noqa: E402
    LOGGING_OFF,
    HFTrainerRunner,
    RawLoopRunner,
    TransferlabRunner,
    count,
    hf_arguments,
    hf_settings,
    transferlab_assemble,
    transferlab_raw,
)

SHAPES = {  # preset, the test metric compared
    "pairs": ("pairs", "test/acc"),
    "regression": ("regression", "test/pearson"),
    "multilabel": ("multilabel", "test/f1_micro"),
    "qa_v2": ("qa_v2", "test/f1"),
}
PINNED = ["scheduler.name=linear", "scheduler.warmup_ratio=0.06", "trainer.gradient_clip_val=1.0"]
PINNED += ["trainer.precision=32-true", "optimizer.weight_decay=0.01"]


def rows_per_batch(batch) -> int:
    """Passed where a FLOP count goes: the window's 'gflops' * 1e9 is then samples/s."""
    return batch["input_ids"].shape[0]


def peer_rows(a):
    """transferlab's encoded train rows as the HF model's own inputs: the same ids, its label names and dtypes."""
    import torch
    from datasets import Dataset

    objective, rows = a.module.objective, a.datamodule.datasets["train"]
    keep = [k for k in ("input_ids", "token_type_ids") if k in rows[0]]
    out = {k: [] for k in keep}
    targets = {}
    for i in range(len(rows)):
        row = rows[i]
        for k in keep:
            out[k].append(row[k].tolist())
        if objective.name == "extractive_qa":
            targets.setdefault("start_positions", []).append(int(row["start"]))
            targets.setdefault("end_positions", []).append(int(row["end"]))
        elif objective.name == "regression":
            targets.setdefault("labels", []).append((float(row["labels"]) - objective.mean) / objective.std)
        elif objective.name == "multilabel_classification":
            from transferlab.objectives.multilabel_labels import unpacked

            words = {c: torch.tensor([int(row[c])]) for c in objective.columns}
            bits = unpacked(words, objective.columns, len(objective.names))[0]
            targets.setdefault("labels", []).append(bits.tolist())
        else:
            targets.setdefault("labels", []).append(int(row["labels"]))
    return Dataset.from_dict({**out, **targets})


def evaluate(a) -> dict:
    """Validate (tuning what the objective tunes there) then test the module's current weights."""
    a.trainer.validate(a.module, datamodule=a.datamodule, verbose=False)
    results = a.trainer.test(a.module, datamodule=a.datamodule, verbose=False)
    return {k: float(v) for r in results for k, v in r.items()}


def tl_quality(cfg, run_dir: Path, warmup: int) -> dict:
    """transferlab's fit for cfg.trainer.max_steps steps: its test metrics and throughput."""
    import lightning.pytorch as pl

    a = transferlab_assemble(cfg, run_dir)
    log = StepLog(warmup=warmup)

    class Stamp(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            log.step_end()
            log.batch(*count(batch, rows_per_batch))

    a.trainer.callbacks.append(Stamp())
    t = time.perf_counter()
    a.trainer.fit(a.module, datamodule=a.datamodule)
    return {"fit_s": time.perf_counter() - t, **log.window(), **evaluate(a)}


def hf_quality(cfg, run_dir: Path, warmup: int) -> dict:
    """HF Trainer on the same initial weights (a second assembly, seeded alike) and rows, then the same evaluation."""
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    b = transferlab_assemble(cfg, run_dir)
    log, collator = StepLog(warmup=warmup), DataCollatorWithPadding(b.tokenizer)

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            log.step_end()

    def collate(features):
        batch = collator(features)
        log.batch(*count(batch, rows_per_batch))
        return batch

    settings = hf_settings(cfg)
    trainer = Trainer(
        model=b.module.model,
        args=hf_arguments(
            WORK / "hf_trainer", int(cfg.trainer.max_steps), **settings, train_sampling_strategy="random"
        ),
        train_dataset=peer_rows(b),
        data_collator=collate,
        callbacks=[Stamp()],
    )
    trainer.remove_callback(PrinterCallback)
    t = time.perf_counter()
    trainer.train()
    return {"fit_s": time.perf_counter() - t, **log.window(), **evaluate(b)}


def speed(overrides: list, run_dir: Path, a) -> dict:
    from transformers import DataCollatorWithPadding

    tl = TransferlabRunner(overrides, run_dir, a.steps, a.warmup, rows_per_batch)
    first = tl.prepare()
    runners = {
        "transferlab": tl,
        "hf_trainer": HFTrainerRunner(
            lambda: transferlab_assemble(tl.cfg, run_dir).module.model,
            peer_rows(first),
            DataCollatorWithPadding(first.tokenizer),
            a.steps,
            a.warmup,
            rows_per_batch,
            hf_settings(tl.cfg),
            train_sampling_strategy="random",
        ),
        "raw_transferlab": RawLoopRunner(
            transferlab_raw(tl.cfg, run_dir), a.steps, a.warmup, rows_per_batch, float(tl.cfg.trainer.gradient_clip_val)
        ),
    }
    if a.runners:
        runners = {k: runners[k] for k in a.runners.split(",")}
    results = interleave(runners, a.repeats, a.max_foreign)
    rows = {}
    for name in runners:
        s = results[name]
        rows[name] = {
            "tokens_per_s": statistics.median(x["real_tokens_per_s"] for x in s),
            "samples_per_s": statistics.median(x["gflops"] * 1e9 for x in s),
            "pad_share": statistics.median(x["pad_share"] for x in s),
        }
        for peer in ("hf_trainer", "raw_transferlab"):
            if peer in runners and name == "transferlab":
                ratios = [x["real_tokens_per_s"] / y["real_tokens_per_s"] for x, y in zip(s, results[peer])]
                rows[name][f"vs_{peer}"] = statistics.median(ratios)
                rows[name][f"vs_{peer}_rounds"] = [round(r, 3) for r in ratios]
    return {"rows": rows, "rounds": results["_rounds"]}


def main():
    a = args(
        __doc__.splitlines()[0],
        steps=30,
        repeats=3,
        options={
            "--shapes": (str, ",".join(SHAPES), "comma-separated subset of " + ",".join(SHAPES)),
            "--model": (str, None, "a local HF-format dir (model=pretrained, its tokenizer); default: each preset's"),
            "--lr": (float, None, "optimizer.lr (default: the preset's)"),
            "--batch": (int, 32, "data.batch_size"),
            "--phase": (str, "speed,quality", "speed, quality or both"),
            "--quality-steps": (int, 150, "steps of each loop in the quality phase"),
            "--seeds": (str, "42", "comma-separated seeds of the quality phase (each: the same init for both loops)"),
            "--no-bucket": (int, 0, "1: the quality phase also runs transferlab with data.bucket_by_length=false"),
        },
    )
    quiet()
    model = ["model=pretrained", f"model.name_or_path={a.model}", "tokenizer=pretrained"] if a.model else []
    lr = [f"optimizer.lr={a.lr}"] if a.lr else []
    tag = Path(a.model).name if a.model else "preset"
    report = {"versions": versions(), "args": vars(a), "shapes": {}}
    for shape in a.shapes.split(","):
        preset, metric = SHAPES[shape]
        overrides = [f"experiment={preset}", *model, *PINNED, *lr, f"data.batch_size={a.batch}"]
        overrides.append(f"task_name=bench_{shape}")
        run_dir = WORK / f"shapes_{shape}_{tag}"
        got = report["shapes"][shape] = {"metric": metric}
        if "speed" in a.phase:
            got["speed"] = speed(overrides, run_dir, a)
            print(
                shape,
                "speed",
                {
                    k: {m: round(v, 3) if isinstance(v, float) else v for m, v in r.items()}
                    for k, r in got["speed"]["rows"].items()
                },
                flush=True,
            )
        if "quality" in a.phase:
            from transferlab.cli.front import compose

            got["quality"] = []
            for seed in a.seeds.split(","):
                base = [*overrides, *LOGGING_OFF, "test=true", f"trainer.max_steps={a.quality_steps}", f"seed={seed}"]
                runs = {"transferlab": (tl_quality, base), "hf_trainer": (hf_quality, base)}
                if a.no_bucket:
                    runs["transferlab_no_bucket"] = (tl_quality, [*base, "data.bucket_by_length=false"])
                for name, (fn, ov) in runs.items():
                    r = fn(compose(ov), run_dir, a.warmup)
                    got["quality"].append({"runner": name, "seed": int(seed), **r})
                    print(
                        f"{shape} quality seed {seed} {name}: {metric}={r.get(metric, float('nan')):.4f} "
                        f"samples/s={r['gflops'] * 1e9:.1f} non-pad tok/s={r['real_tokens_per_s']:.0f} "
                        f"fit {r['fit_s']:.0f}s",
                        flush=True,
                    )
        save(f"shapes_{tag}", report, a.runners)


if __name__ == "__main__":
    main()
