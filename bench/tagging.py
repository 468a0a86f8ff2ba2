"""Tagging: effective (non-pad) tokens/s, transferlab (length-bucketed batches) vs HF Trainer
(DataCollatorForTokenClassification, dynamic padding), on the Brown POS task.

Same tiny BERT config, the same WordPiece tokenizer (trained by transferlab on the Brown train words), truncation at
128 tokens (data.max_seq_len of brown_pos), labels on each word's first sub-word, batch 32, lr 1e-3, AdamW, clip 1.0,
linear schedule: pinned below as overrides, and the peer reads them back.
Runners, interleaved each round:
  transferlab            the product: compose(PINNED) -> assemble -> trainer.fit; data.bucket_by_length=true
  transferlab_no_bucket  the same with data.bucket_by_length=false: what bucketing alone buys
  hf_trainer             transformers.Trainer, DataCollatorForTokenClassification, random sampler (no group_by_length)
  raw_transferlab        a raw loop doing transferlab's exact work (its sampler, collator, objective): overhead row
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
from runners import HFTrainerRunner, RawLoopRunner, TransferlabRunner, hf_settings, transferlab_raw  # noqa: E402

PINNED = [
    "model=tiny_bert",
    "objective=token_classification",
    "freeze=none",
    "data=brown_pos",
    "tokenizer=train",
    "task_name=bench_tagging",
    "data.max_seq_len=128",
    "data.batch_size=32",
    "data.max_train_samples=null",
    "data.train_fraction=1.0",
    *RECIPE,
]


def main():
    a = args(__doc__.splitlines()[0], steps=60, repeats=5)
    a.warmup = max(a.warmup, 5)
    quiet()
    t0 = time.perf_counter()
    import numpy as np
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    from transferlab.config import DATA_DIR
    from transferlab.data.conll import read_conll
    from transferlab.objectives.token_classification import align

    run_dir = WORK / "tagging_run"
    tl = TransferlabRunner([*PINNED, "data.bucket_by_length=true"], run_dir, a.steps, a.warmup, None)
    tl_flat = TransferlabRunner([*PINNED, "data.bucket_by_length=false"], run_dir, a.steps, a.warmup, None)
    first = tl.prepare()
    tokenizer, config, tag2id = first.tokenizer, first.module.model.config, first.module.objective.tag2id
    dims = model_dims(config)

    def flops(batch):
        b, t = batch["input_ids"].shape
        return encoder_flops(b, t, **dims, head_rows=b * t, head_params=dims["d"] * len(tag2id))

    tl.flops_fn = tl_flat.flops_fn = flops
    words = read_conll(DATA_DIR / "brown_pos" / "train.conll.gz")
    settings, max_len = hf_settings(tl.cfg), tl.cfg.data.max_seq_len

    def encode(batch):  # the HF token-classification example's alignment: first sub-word tagged, the rest -100
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_len)
        enc["labels"] = [
            align(enc.word_ids(i), [tag2id[t] for t in tags], False, {})[0] for i, tags in enumerate(batch["tags"])
        ]
        return enc

    encoded = words.map(encode, batched=True, remove_columns=words.column_names)
    model_fn = lambda: AutoModelForTokenClassification.from_config(config)  # noqa: E731
    runners = {
        "transferlab": tl,
        "transferlab_no_bucket": tl_flat,
        "hf_trainer": HFTrainerRunner(
            model_fn,
            encoded,
            DataCollatorForTokenClassification(tokenizer),
            a.steps,
            a.warmup,
            flops,
            settings,
            train_sampling_strategy="random",
        ),
        "raw_transferlab": RawLoopRunner(transferlab_raw(tl.cfg, run_dir), a.steps, a.warmup, flops, settings["clip"]),
    }
    lengths = first.datamodule.datasets["train"].lengths
    print(
        f"setup {time.perf_counter() - t0:.1f}s; {len(lengths)} train sentences, mean length {np.mean(lengths):.1f} "
        f"tokens (p50 {np.median(lengths):.0f}, p95 {np.percentile(lengths, 95):.0f}, max {max(lengths)})",
        flush=True,
    )

    runners = select(runners, a.runners)
    peer = peer_of(runners)
    results = interleave(runners, a.repeats, a.max_foreign)
    rows = summarize(results, peer=peer, metric="real_tokens_per_s")
    text = table(
        f"Tagging: non-pad tokens/s (max {settings_line(tl.cfg)}, {a.threads} torch threads)",
        rows,
        peer,
        "non-pad tokens/s",
    )
    over = overhead(results, "transferlab", "raw_transferlab", "real_tokens_per_s")
    text += f"\n\n{overhead_line(over, results, 'real_tokens_per_s')}\n{rounds_line(results)}"
    print(text, flush=True)
    if a.profile:
        for name in [n for n in ("transferlab", "hf_trainer") if n in runners]:
            print(profile_top(name, runners[name]), flush=True)
    save(
        "tagging",
        {
            "versions": versions(),
            "args": vars(a),
            "rows": rows,
            "rounds": results["_rounds"],
            "samples": results,
            "overhead": over,
            "table": text,
        },
        a.runners,
    )


if __name__ == "__main__":
    main()
