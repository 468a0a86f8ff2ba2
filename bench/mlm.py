"""MLM tokens/s: transferlab (sparse vocabulary head) vs HF Trainer + DataCollatorForLanguageModeling (dense head).

Same tiny BERT config (conf/model/tiny_bert.yaml), the same WordPiece tokenizer (trained by transferlab, loaded
from its run dir), block 128, batch 32, 15% masking (80/10/10), lr 1e-3, AdamW, clip 1.0, linear schedule: pinned
below as overrides (not via experiment=pretrain_mlm, whose recipe may change), and the peer reads them back.
Runners, interleaved each round:
  transferlab      the product: compose(PINNED) -> assemble -> trainer.fit
  hf_trainer       transformers.Trainer, run_mlm.py's tokenize + group_texts, DataCollatorForLanguageModeling
  raw_transferlab  a raw loop doing transferlab's exact work (its collator, sparse head, metrics): overhead row
  raw_hf_dense     a raw loop doing HF's work (dense head): the sparse head's gain without either framework
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
    "model=tiny_bert",
    "objective=mlm",
    "freeze=none",
    "data=wordnet_corpus",
    "tokenizer=train",
    "task_name=bench_mlm",
    "data.max_seq_len=128",
    "data.batch_size=32",
    "objective.mlm_probability=0.15",
    "objective.whole_word_mask=false",
    "objective.sparse_head=true",
    *RECIPE,
]


def main():
    a = args(__doc__.splitlines()[0], steps=12)
    quiet()
    t0 = time.perf_counter()
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from transferlab.config import DATA_DIR

    run_dir = WORK / "mlm_run"
    tl = TransferlabRunner(PINNED, run_dir, a.steps, a.warmup, None)
    first = tl.prepare()
    tokenizer, config = first.tokenizer, first.module.model.config
    dims, vocab = model_dims(config), len(tokenizer)
    head_params = dims["d"] * dims["d"] + dims["d"] * vocab  # transform dense + decoder (tied to the embeddings)

    def sparse_flops(batch):
        b, t = batch["input_ids"].shape
        return encoder_flops(b, t, **dims, head_rows=batch["masked_positions"].numel(), head_params=head_params)

    def dense_flops(batch):
        b, t = batch["input_ids"].shape
        return encoder_flops(b, t, **dims, head_rows=b * t, head_params=head_params)

    tl.flops_fn = sparse_flops
    texts = load_texts(DATA_DIR / "wordnet_corpus" / "train.jsonl.gz")
    tokenized = texts.map(
        lambda b: tokenizer(b["text"], return_special_tokens_mask=True), batched=True, remove_columns=["text"]
    )
    blocks = tokenized.map(group_texts(tl.cfg.data.max_seq_len), batched=True)
    mlm = tl.cfg.objective
    collator = DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=mlm.mlm_probability,
        mask_replace_prob=mlm.mask_replace_prob,
        random_replace_prob=mlm.random_replace_prob,
    )
    settings = hf_settings(tl.cfg)
    model_fn = lambda: AutoModelForMaskedLM.from_config(config)  # noqa: E731
    total = a.steps + a.warmup
    runners = {
        "transferlab": tl,
        "hf_trainer": HFTrainerRunner(model_fn, blocks, collator, a.steps, a.warmup, dense_flops, settings),
        "raw_transferlab": RawLoopRunner(
            transferlab_raw(tl.cfg, run_dir), a.steps, a.warmup, sparse_flops, settings["clip"]
        ),
        "raw_hf_dense": RawLoopRunner(
            hf_raw(model_fn, blocks.remove_columns(["special_tokens_mask"]), collator, settings, total),
            a.steps,
            a.warmup,
            dense_flops,
            settings["clip"],
        ),
    }
    check = flop_check(first, sparse_flops)
    params = sum(p.numel() for p in first.module.model.parameters())
    print(
        f"setup {time.perf_counter() - t0:.1f}s; tiny BERT {params / 1e6:.2f}M params, vocab {vocab}, "
        f"{len(first.datamodule.datasets['train'])} transferlab blocks, {len(blocks)} HF blocks; {check}",
        flush=True,
    )

    runners = select(runners, a.runners)
    peer = peer_of(runners)
    results = interleave(runners, a.repeats, a.max_foreign)
    rows = summarize(results, peer=peer, metric="tokens_per_s")
    text = table(f"MLM: tokens/s (block {settings_line(tl.cfg)}, {a.threads} torch threads)", rows, peer)
    by = {r["runner"]: r for r in rows}
    over = overhead(results, "transferlab", "raw_transferlab", "tokens_per_s")
    text += f"\n\n{overhead_line(over, results)}\n{rounds_line(results)}\n{check}"
    print(text, flush=True)
    if a.profile:
        for name in [n for n in ("transferlab", "hf_trainer") if n in runners]:
            print(profile_top(name, runners[name]), flush=True)
    save(
        "mlm",
        {
            "versions": versions(),
            "args": vars(a),
            "rows": rows,
            "rounds": results["_rounds"],
            "samples": results,
            "overhead": over,
            "flop_check": check,
            "params": params,
            "vocab": vocab,
            "table": text,
        },
        a.runners,
    )
    return by


def flop_check(assembly, flops_fn) -> str:
    """The FLOP formula against torch's FlopCounterMode on one real transferlab batch (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = next(iter(assembly.datamodule.train_dataloader()))
    model, objective = assembly.module.model, assembly.module.objective
    with FlopCounterMode(display=False) as counter:
        objective.step(model, batch, "train").backward()
    model.zero_grad(set_to_none=True)
    counted, formula = counter.get_total_flops(), flops_fn(batch)
    return (
        f"FLOP formula {formula / 1e9:.2f} GFLOP/batch vs "
        f"FlopCounterMode {counted / 1e9:.2f} ({formula / counted:.2f}x)"
    )


if __name__ == "__main__":
    main()
