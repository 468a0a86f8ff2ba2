"""Text-to-text: seq2seq fine-tuning tokens/s (source + target, non-pad) and evaluation-with-generation throughput,
transferlab vs HF Seq2SeqTrainer (DataCollatorForSeq2Seq, dynamic padding), and span corruption's collator share.

Same tiny T5 config, the same Unigram tokenizer (trained by transferlab on the definitions' train texts), 64-token
sources, 64-token targets, batch 32, lr 1e-3, AdamW, clip 1.0, linear schedule: pinned below, the peer reads them.
Training runners, interleaved each round:
  transferlab            the product: compose(PINNED) -> assemble -> trainer.fit (length-bucketed batches)
  hf_seq2seq_trainer     transformers.Seq2SeqTrainer, DataCollatorForSeq2Seq, random sampler
  raw_transferlab        a raw loop doing transferlab's exact work: overhead row
Evaluation (--eval-examples validation rows, greedy, --new-tokens new tokens, eval batch 64), each round:
  transferlab            trainer.validate: teacher-forced loss, then generate and score every batch
  hf_seq2seq_trainer     Seq2SeqTrainer.predict(predict_with_generate=True): loss, then generate
Span corruption: the collator's time per batch against a whole training step (tiny T5, 64-token inputs, batch 64).
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RECIPE,
    WORK,
    args,
    interleave,
    overhead,
    overhead_line,
    peer_of,
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
    hf_settings,
    transferlab_assemble,
    transferlab_raw,
)

PINNED = [
    "model=tiny_t5",
    "objective=seq2seq",
    "freeze=none",
    "data=wordnet_definitions",
    "tokenizer=train",
    "tokenizer.vocab_size=4000",
    "task_name=bench_seq2seq",
    "data.max_seq_len=64",
    "objective.max_target_len=64",
    "data.batch_size=32",
    "data.max_train_samples=null",
    "data.train_fraction=1.0",
    "data.bucket_by_length=true",  # seq2seq trains on random batches by default (quality); bucketing is the speed lever
    *RECIPE,
]


def main():
    a = args(
        __doc__.splitlines()[0],
        steps=40,
        repeats=3,
        options={
            "--eval-examples": (int, 256, "validation examples each evaluation generates for"),
            "--new-tokens": (int, 32, "new tokens generated per example (greedy)"),
        },
    )
    quiet()
    from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from transferlab.data.loading import load_splits
    from transferlab.objectives.seq2seq import Seq2Seq, clipped

    run_dir = WORK / "seq2seq_run"
    tl = TransferlabRunner(PINNED, run_dir, a.steps, a.warmup, None)
    first = tl.prepare()
    tokenizer, config = first.tokenizer, first.module.model.config
    n_params = sum(p.numel() for p in first.module.model.parameters())

    def flops(batch):  # 6 x parameters x tokens, source and target (non-pad)
        return 6 * n_params * (int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum()))

    flops.counts_targets = True
    tl.flops_fn = flops
    raw, _ = load_splits(tl.cfg.data, Seq2Seq)

    def encode(batch):  # the HF translation/summarization examples' preprocessing, with transferlab's limits
        sources = [clipped(ids, 64)[0] for ids in tokenizer(batch["source"])["input_ids"]]
        targets = [clipped(ids, 64)[0] for ids in tokenizer(batch["target"])["input_ids"]]
        return {"input_ids": sources, "attention_mask": [[1] * len(s) for s in sources], "labels": targets}

    encoded = {
        split: raw[split].map(encode, batched=True, remove_columns=raw[split].column_names)
        for split in ("train", "validation")
    }
    model_fn = lambda: AutoModelForSeq2SeqLM.from_config(config)  # noqa: E731
    settings = hf_settings(tl.cfg)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    runners = select(
        {
            "transferlab": tl,
            "hf_seq2seq_trainer": HFTrainerRunner(
                model_fn,
                encoded["train"],
                collator,
                a.steps,
                a.warmup,
                flops,
                settings,
                trainer_cls=Seq2SeqTrainer,
                args_cls=Seq2SeqTrainingArguments,
                train_sampling_strategy="random",
            ),
            "raw_transferlab": RawLoopRunner(
                transferlab_raw(tl.cfg, run_dir), a.steps, a.warmup, flops, settings["clip"]
            ),
        },
        a.runners,
    )
    peer = peer_of(runners, "hf_seq2seq_trainer")
    results = interleave(runners, a.repeats, a.max_foreign)
    rows = summarize(results, peer=peer, metric="real_tokens_per_s")
    text = table(
        f"Seq2seq fine-tuning: non-pad source + target tokens/s ({settings_line(tl.cfg)}, {a.threads} torch threads)",
        rows,
        peer,
        "non-pad tokens/s",
    )
    over = overhead(results, "transferlab", "raw_transferlab", "real_tokens_per_s")
    text += f"\n\n{overhead_line(over, results, 'real_tokens_per_s')}\n{rounds_line(results)}"
    print(text, flush=True)

    evaluation = evaluate_rounds(
        a, tl, encoded["validation"], model_fn, collator, Seq2SeqTrainer, Seq2SeqTrainingArguments
    )
    collate = collator_share(run_dir)
    print(evaluation["text"] + "\n\n" + collate["text"], flush=True)
    save(
        "seq2seq",
        {
            "versions": versions(),
            "args": vars(a),
            "rows": rows,
            "rounds": results["_rounds"],
            "samples": results,
            "overhead": over,
            "evaluation": evaluation,
            "span_corruption_collator": collate,
            "table": text,
        },
        a.runners,
    )


def evaluate_rounds(a, tl, validation, model_fn, collator, trainer_cls, args_cls) -> dict:
    """Examples/s of a whole evaluation with generation, both sides on the same weights, rounds interleaved."""
    import torch

    n, new = a.eval_examples, a.new_tokens
    cfg = tl.cfg.copy()
    cfg.data.max_eval_samples, cfg.data.eval_batch_size, cfg.objective.generation.max_new_tokens = n, 64, new
    times = {"transferlab": [], "hf_seq2seq_trainer": []}
    for _ in range(a.repeats):
        assembled = transferlab_assemble(cfg, WORK / "seq2seq_run")
        start = time.perf_counter()
        assembled.trainer.validate(assembled.module, datamodule=assembled.datamodule, verbose=False)
        times["transferlab"].append(time.perf_counter() - start)
        model = model_fn()
        model.load_state_dict(assembled.module.model.state_dict())
        hf_args = args_cls(
            output_dir=str(WORK / "hf_seq2seq"),
            per_device_eval_batch_size=64,
            predict_with_generate=True,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = trainer_cls(model=model, args=hf_args, data_collator=collator)
        start = time.perf_counter()
        with torch.no_grad():
            trainer.predict(validation.select(range(n)), max_new_tokens=new, num_beams=1)
        times["hf_seq2seq_trainer"].append(time.perf_counter() - start)
    speed = {k: statistics.median(n / t for t in v) for k, v in times.items()}
    ratios = [h / t for t, h in zip(times["transferlab"], times["hf_seq2seq_trainer"])]
    text = (
        f"### Evaluation with generation ({n} validation examples, greedy, {new} new tokens, batch 64, KV cache on in "
        f"both: generation_config.use_cache=True)\n\n"
        f"| runner | examples/s (median) | ratio vs hf_seq2seq_trainer [min-max] |\n"
        f"|---|---|---|\n| transferlab | {speed['transferlab']:.1f} | {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}-{max(ratios):.2f}] |\n| hf_seq2seq_trainer | {speed['hf_seq2seq_trainer']:.1f} | 1.00x |"
    )
    return {"seconds": times, "examples_per_s": speed, "ratio": statistics.median(ratios), "text": text}


def collator_share(run_dir: Path) -> dict:
    """Span corruption: the collator's median time per batch against a full training step's."""
    import torch

    from transferlab.cli.front import compose

    cfg = compose(
        [
            "experiment=pretrain_t5",
            "data.max_train_samples=20000",
            "logger=none",
            "callbacks.progress_bar=false",
            "callbacks.checkpoint.enabled=false",
            "test=false",
            "export=false",
        ]
    )
    assembled = transferlab_assemble(cfg, run_dir.parent / "span_run")
    loader = assembled.datamodule.train_dataloader()
    model, objective = assembled.module.model.train(), assembled.module.objective
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collate_s, step_s = [], []
    sampler_batches = iter(loader.batch_sampler)
    dataset, collate = loader.dataset, loader.collate_fn
    for i in range(30):
        start = time.perf_counter()
        batch = collate(dataset.__getitems__(next(sampler_batches)))
        mid = time.perf_counter()
        loss = objective.step(model, batch, "train")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        end = time.perf_counter()
        if i >= 5:
            collate_s.append(mid - start)
            step_s.append(end - start)
    share = statistics.median(c / s for c, s in zip(collate_s, step_s))
    text = (
        f"### Span corruption collator (tiny T5, {cfg.data.max_seq_len}-token inputs, "
        f"batch {cfg.data.batch_size}, 25 steps)\n\n"
        f"collator {1000 * statistics.median(collate_s):.1f} ms of a {1000 * statistics.median(step_s):.1f} ms step: "
        f"{100 * share:.1f}% (median of per-step shares)"
    )
    return {
        "collate_ms": 1000 * statistics.median(collate_s),
        "step_ms": 1000 * statistics.median(step_s),
        "share": share,
        "text": text,
    }


if __name__ == "__main__":
    main()
