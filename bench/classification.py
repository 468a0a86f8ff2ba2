"""Classification: effective (non-pad) tokens/s, transferlab (length-bucketed batches) vs HF Trainer (dynamic padding).

Same tiny BERT config, the same WordPiece tokenizer (trained by transferlab on the topics' train text), truncation at
64 tokens (data.max_seq_len of wordnet_topics), batch 32, lr 1e-3, AdamW, clip 1.0, linear schedule: pinned below
as overrides, and the peer reads them back.
Runners, interleaved each round:
  transferlab            the product: compose(PINNED) -> assemble -> trainer.fit, on all the train data;
                         data.bucket_by_length=true (data/buckets.py) + PadCollator
  transferlab_no_bucket  the same with data.bucket_by_length=false: what bucketing alone buys
  hf_trainer             transformers.Trainer, DataCollatorWithPadding, random sampler (no group_by_length)
  raw_transferlab        a raw loop doing transferlab's exact work (its sampler, collator, objective): overhead row
Also: the pad-token share of a whole epoch of each sampler (no model involved).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RECIPE,
    WORK,
    args,
    encoder_flops,
    interleave,
    model_dims,
    overhead,
    overhead_line,
    peer_of,
    profile_top,
    quiet,
    rounds_line,
    save,
    select,
    settings_line,
    summarize,
    table,
    versions,
)
from runners import HFTrainerRunner, RawLoopRunner, TransferlabRunner, hf_settings, load_texts, transferlab_raw  # noqa: E402

PINNED = [
    "model=tiny_bert",
    "objective=classification",
    "freeze=none",
    "data=wordnet_topics",
    "tokenizer=train",
    "task_name=bench_classification",
    "data.max_seq_len=64",
    "data.batch_size=32",
    "data.max_train_samples=null",
    "data.train_fraction=1.0",
    *RECIPE,
]


def epoch_pad_share(batches, lengths) -> float:
    real = sum(sum(lengths[i] for i in b) for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / padded


def main():
    a = args(__doc__.splitlines()[0], steps=60, repeats=5)
    a.warmup = max(a.warmup, 5)
    quiet()
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    from transferlab.config import DATA_DIR
    from transferlab.data.buckets import BatchSampler

    run_dir = WORK / "cls_run"
    tl = TransferlabRunner([*PINNED, "data.bucket_by_length=true"], run_dir, a.steps, a.warmup, None)
    tl_flat = TransferlabRunner([*PINNED, "data.bucket_by_length=false"], run_dir, a.steps, a.warmup, None)
    first = tl.prepare()
    tokenizer, config, label2id = first.tokenizer, first.module.model.config, first.module.objective.label2id
    dims, n_labels = model_dims(config), len(label2id)

    def flops(batch):
        b, t = batch["input_ids"].shape
        return encoder_flops(b, t, **dims, head_rows=b, head_params=dims["d"] * dims["d"] + dims["d"] * n_labels)

    tl.flops_fn = tl_flat.flops_fn = flops
    texts = load_texts(DATA_DIR / "wordnet_topics" / "train.jsonl.gz")
    settings, max_len = hf_settings(tl.cfg), tl.cfg.data.max_seq_len
    encoded = texts.map(
        lambda b: {
            **tokenizer(b["text"], truncation=True, max_length=max_len),
            "labels": [label2id[str(x)] for x in b["label"]],
        },
        batched=True,
        remove_columns=texts.column_names,
    )
    model_fn = lambda: AutoModelForSequenceClassification.from_config(config)  # noqa: E731
    runners = {
        "transferlab": tl,
        "transferlab_no_bucket": tl_flat,
        "hf_trainer": HFTrainerRunner(
            model_fn,
            encoded,
            DataCollatorWithPadding(tokenizer),
            a.steps,
            a.warmup,
            flops,
            settings,
            train_sampling_strategy="random",
        ),  # group_by_length=False
        "raw_transferlab": RawLoopRunner(transferlab_raw(tl.cfg, run_dir), a.steps, a.warmup, flops, settings["clip"]),
    }

    # Pad share of one whole epoch: the product's sampler vs a random sampler with pad-to-longest.
    tl_lengths = first.datamodule.datasets["train"].lengths
    batch = settings["batch_size"]
    bucketed = list(BatchSampler(tl_lengths, batch, shuffle=True, bucket=True, seed=42))
    hf_lengths = [len(x) for x in encoded["input_ids"]]
    order = torch.randperm(len(hf_lengths), generator=torch.Generator().manual_seed(42)).tolist()
    random_batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    epoch = {
        "transferlab (bucketed)": epoch_pad_share(bucketed, tl_lengths),
        "hf_trainer (random, pad to longest)": epoch_pad_share(random_batches, hf_lengths),
    }
    print(
        f"setup {time.perf_counter() - t0:.1f}s; {len(tl_lengths)} train examples, "
        f"mean length {np.mean(tl_lengths):.1f} "
        f"tokens (p50 {np.median(tl_lengths):.0f}, p95 {np.percentile(tl_lengths, 95):.0f}, max {max(tl_lengths)}); "
        f"epoch pad share: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in epoch.items()),
        flush=True,
    )

    runners = select(runners, a.runners)
    peer = peer_of(runners)
    results = interleave(runners, a.repeats, a.max_foreign)
    rows = summarize(results, peer=peer, metric="real_tokens_per_s")
    text = table(
        f"Classification: non-pad tokens/s (max {settings_line(tl.cfg)}, {a.threads} torch threads)",
        rows,
        peer,
        "non-pad tokens/s",
    )
    over = overhead(results, "transferlab", "raw_transferlab", "real_tokens_per_s")
    text += (
        "\n\nepoch pad share: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in epoch.items())
        + f"\n{overhead_line(over, results, 'real_tokens_per_s')}\n{rounds_line(results)}"
    )
    print(text, flush=True)
    if a.profile:
        for name in [n for n in ("transferlab", "hf_trainer") if n in runners]:
            print(profile_top(name, runners[name]), flush=True)
    save(
        "classification",
        {
            "versions": versions(),
            "args": vars(a),
            "rows": rows,
            "rounds": results["_rounds"],
            "samples": results,
            "overhead": over,
            "epoch_pad_share": epoch,
            "table": text,
        },
        a.runners,
    )


if __name__ == "__main__":
    main()
