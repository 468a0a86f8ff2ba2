"""SFT tokens/s on multi-turn chat data: transferlab (padded and packed) vs HF Trainer on the same encoded rows.

The data is bench/sft_packing.py's: conversations of 1-4 turns of embedded WordNet definitions in the messages format
(data.format=messages), written to a JSONL file the product reads with data=files. The same tiny GPT-2
(conf/model/tiny_gpt2.yaml), byte-level BPE tokenizer trained by transferlab, data.max_seq_len 256, batch 8, lr 1e-3,
AdamW, clip 1.0, linear schedule: pinned below, and the peer reads them back.
Runners, interleaved each round:
  transferlab         the product, padded rows (length-bucketed, the default): compose -> assemble -> trainer.fit
  transferlab_packed  the same with objective.packing=true (conversations packed into 256-token rows)
  hf_trainer          transformers.Trainer on transferlab's encoded train rows (the same ids, the loss on the
                      assistant turns as -100 labels elsewhere), DataCollatorForSeq2Seq, a random sampler: the padded
                      SFT of the HF examples
  hf_trainer_grouped  the same with group_by_length (HF's own length grouping)
  trl, trl_packed     TRL's SFTTrainer on the same rows (their labels kept, packed too), fp32 without gradient
                      checkpointing; packed is its default best-fit-decreasing packing, padding-free: a batch's rows
                      become one sequence with per-conversation position_ids. TRL also logs entropy and token
                      accuracy every step, as it does by default. Where trl is installed.
Non-pad tokens/s counts the tokens of the conversations a batch holds (a packed row's padding to the batch's longest
row is padding too).

  python bench/sft.py --threads 1
  python bench/sft.py --threads 2 --runners transferlab,hf_trainer_grouped --profile   # where a step's time goes
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RECIPE,
    WORK,
    args,
    interleave,
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
from runners import HFTrainerRunner, TransferlabRunner, hf_settings  # noqa: E402
from sft_packing import conversations  # noqa: E402


def pinned(path: Path, rows: int) -> list:
    return [
        "model=tiny_gpt2",
        "objective=sft",
        "freeze=none",
        "tokenizer=train",
        "data=files",
        f"data.train={path}",
        "data.format=messages",
        "data.max_seq_len=256",
        "data.batch_size=8",
        f"data.max_train_samples={rows}",
        "trainer.limit_val_batches=0",  # no validation (sft's generates) inside a timed window
        "task_name=bench_sft",
        *RECIPE,
    ]


def peer_rows(a):
    """transferlab's encoded train rows (input_ids and the assistant-only labels) as HF's causal LM takes them."""
    from datasets import Dataset

    rows = a.datamodule.datasets["train"]
    out = {"input_ids": [], "labels": []}
    for i in range(len(rows)):
        row = rows[i]
        out["input_ids"].append(row["input_ids"].tolist())
        out["labels"].append(row["labels"].tolist())
    return Dataset.from_dict(out)


def no_flops(batch) -> float:
    return 0.0


def trl_runners(model_fn, rows, tokenizer, settings: dict, a) -> dict:
    """TRL's SFTTrainer on the same encoded rows (their labels used as they are), padded and packed (its default
    best-fit-decreasing packing, padding-free rows with per-conversation position_ids); none where TRL is missing."""
    try:
        from trl import SFTConfig, SFTTrainer
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    except ImportError:
        print("trl is not installed: its rows are skipped (pip install trl)", flush=True)
        return {}

    def runner(packing: bool) -> HFTrainerRunner:
        # packed: TRL's own padding-free collator (it refuses another); padded: the same collator class, built here
        collator = None if packing else DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
        return HFTrainerRunner(
            model_fn,
            rows,
            collator,
            a.steps,
            a.warmup,
            no_flops,
            settings,
            trainer_cls=SFTTrainer,
            args_cls=SFTConfig,
            trainer_kwargs={"processing_class": tokenizer},
            packing=packing,
            max_length=256,
            # TRL's SFTConfig defaults differ from TrainingArguments': bf16 autocast (orders of magnitude slower on
            # a CPU) and gradient checkpointing. Pinned off, as every other runner here trains in fp32 without them.
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
        )

    return {"trl": runner(False), "trl_packed": runner(True)}


def main():
    a = args(
        __doc__.splitlines()[0],
        steps=20,
        options={"--rows": (int, 2000, "conversations")},
    )
    quiet()
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    data = WORK / "sft_data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"chat_{a.rows}.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(r) + "\n" for r in conversations(a.rows)))
    run_dir = WORK / "sft_run"
    tl = TransferlabRunner(pinned(path, a.rows), run_dir, a.steps, a.warmup, no_flops)
    first = tl.prepare()
    packed = TransferlabRunner([*pinned(path, a.rows), "objective.packing=true"], run_dir, a.steps, a.warmup, no_flops)
    packed.prepare()
    config, tokenizer = first.module.model.config, first.tokenizer
    rows = peer_rows(first)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    settings = hf_settings(tl.cfg)
    model_fn = lambda: AutoModelForCausalLM.from_config(config)  # noqa: E731

    def peer(strategy: str) -> HFTrainerRunner:
        return HFTrainerRunner(
            model_fn, rows, collator, a.steps, a.warmup, no_flops, settings, train_sampling_strategy=strategy
        )

    runners = {
        "transferlab": tl,
        "transferlab_packed": packed,
        "hf_trainer": peer("random"),
        "hf_trainer_grouped": peer("group_by_length"),
        **trl_runners(model_fn, rows, tokenizer, settings, a),
    }
    print(
        f"setup {time.perf_counter() - t0:.1f}s; {len(rows)} encoded conversations, "
        f"{sum(len(x) for x in rows['input_ids']):,} tokens; transferlab model built by the product, the peer's from "
        "its config",
        flush=True,
    )
    runners = select(runners, a.runners)
    peer = peer_of(runners)
    results = interleave(runners, a.repeats, a.max_foreign)
    summary = summarize(results, peer=peer, metric="real_tokens_per_s")
    text = table(f"SFT: non-pad tokens/s ({settings_line(tl.cfg)}, {a.threads} torch threads)", summary, peer)
    text += f"\n\n{rounds_line(results)}"
    print(text, flush=True)
    if a.profile:  # one call each, the whole call profiled (warm-up included): where the time of a step goes
        for name in [n for n in ("transferlab", "hf_trainer_grouped") if n in runners]:
            print(profile_top(name, runners[name], rows=25), flush=True)
    save(
        "sft",
        {"versions": versions(), "args": vars(a), "rows": summary, "rounds": results["_rounds"], "table": text},
        a.runners,
    )


if __name__ == "__main__":
    main()
