"""CLM tokens/s: transferlab (packed blocks) vs HF Trainer with run_clm.py's group_texts.

Same tiny GPT-2 config (conf/model/tiny_gpt2.yaml), the same byte-level BPE tokenizer (trained by transferlab, loaded
from its run dir), block 128, batch 32, lr 1e-3, AdamW, clip 1.0, linear schedule: pinned below as overrides (not
via experiment=pretrain_clm, whose recipe may change), and the peer reads them back.
Runners, interleaved each round:
  transferlab      the product: compose(PINNED) -> assemble -> trainer.fit
  hf_trainer       transformers.Trainer, tokenize + group_texts, DataCollatorForLanguageModeling(mlm=False)
  raw_transferlab  a raw loop doing transferlab's exact work (objective.step): overhead row
  raw_hf           a raw loop doing HF's work (loss inside the model): separates Trainer overhead from the loss path
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
from runners import (  # noqa: E402
    HFTrainerRunner,
    RawLoopRunner,
    TransferlabRunner,
    group_texts,
    hf_raw,
    hf_settings,
    load_texts,
    transferlab_raw,
)

PINNED = [
    "model=tiny_gpt2",
    "objective=clm",
    "freeze=none",
    "data=wordnet_corpus",
    "tokenizer=train",
    "task_name=bench_clm",
    "data.max_seq_len=128",
    "data.batch_size=32",
    *RECIPE,
]


def main():
    a = args(__doc__.splitlines()[0], steps=8)
    quiet()
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling

    from transferlab.config import DATA_DIR

    run_dir = WORK / "clm_run"
    tl = TransferlabRunner(PINNED, run_dir, a.steps, a.warmup, None)
    first = tl.prepare()
    tokenizer, config = first.tokenizer, first.module.model.config
    dims, vocab = model_dims(config), len(tokenizer)

    def flops(batch):  # the LM head (tied to the embeddings) runs at every position
        b, t = batch["input_ids"].shape
        return encoder_flops(b, t, **dims, head_rows=b * t, head_params=dims["d"] * vocab)

    tl.flops_fn = flops
    texts = load_texts(DATA_DIR / "wordnet_corpus" / "train.jsonl.gz")
    tokenized = texts.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    blocks = tokenized.map(group_texts(tl.cfg.data.max_seq_len), batched=True)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    settings = hf_settings(tl.cfg)
    model_fn = lambda: AutoModelForCausalLM.from_config(config)  # noqa: E731
    total = a.steps + a.warmup
    runners = {
        "transferlab": tl,
        "hf_trainer": HFTrainerRunner(model_fn, blocks, collator, a.steps, a.warmup, flops, settings),
        "raw_transferlab": RawLoopRunner(transferlab_raw(tl.cfg, run_dir), a.steps, a.warmup, flops, settings["clip"]),
        "raw_hf": RawLoopRunner(
            hf_raw(model_fn, blocks, collator, settings, total), a.steps, a.warmup, flops, settings["clip"]
        ),
    }
    params = sum(p.numel() for p in first.module.model.parameters())
    print(
        f"setup {time.perf_counter() - t0:.1f}s; tiny GPT-2 {params / 1e6:.2f}M params, vocab {vocab}, "
        f"{len(first.datamodule.datasets['train'])} transferlab blocks, {len(blocks)} HF blocks",
        flush=True,
    )

    runners = select(runners, a.runners)
    peer = peer_of(runners)
    results = interleave(runners, a.repeats, a.max_foreign)
    rows = summarize(results, peer=peer, metric="tokens_per_s")
    text = table(f"CLM: tokens/s (block {settings_line(tl.cfg)}, {a.threads} torch threads)", rows, peer)
    over = overhead(results, "transferlab", "raw_transferlab", "tokens_per_s")
    text += f"\n\n{overhead_line(over, results)}\n{rounds_line(results)}"
    print(text, flush=True)
    if a.profile:
        for name in [n for n in ("raw_transferlab", "raw_hf") if n in runners]:
            print(profile_top(name, runners[name]), flush=True)
    save(
        "clm",
        {
            "versions": versions(),
            "args": vars(a),
            "rows": rows,
            "rounds": results["_rounds"],
            "samples": results,
            "overhead": over,
            "params": params,
            "vocab": vocab,
            "table": text,
        },
        a.runners,
    )


if __name__ == "__main__":
    main()
