"""Text-to-text quality: greedy exact match and teacher-forced token accuracy, transferlab vs HF Seq2SeqTrainer,
trained from scratch on the same data with the same tokenizer, T5 config, steps, LR, batch and schedule.

Tasks (packaged data only):
  reverse      a character-level mapping: a WordNet lemma (letters only) -> its letters reversed, space-separated
               ("mosko" -> "o k s o m"); lemmas from the wordnet_definitions splits (split by word already)
  definitions  the embedded wordnet_definitions ("word: <w>; example: <sentence>" -> the definition)
Both sides use transferlab's trained tokenizer (tokenizer=train, the run's <run>/tokenizer), the model config
transferlab built (AutoModelForSeq2SeqLM.from_config of the same config), AdamW with weight decay, linear warm-up and
decay, clip 1.0, seed 42. The peer is Seq2SeqTrainer with DataCollatorForSeq2Seq and a random sampler.
Both trained models are scored by one scorer (model.generate, greedy, the same new-token limit; exact match after
whitespace normalisation, as transferlab's): on the product's validation sample, plus transferlab's own validation
(trainer.validate: its collator, batching and generation path) for the product row.

--factor swaps one thing at a time, to find what makes a difference (see FACTORS); "a+b" swaps two.
"""

import gzip
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RECIPE, WORK, quiet, save, versions  # noqa: E402
from runners import LOGGING_OFF, hf_arguments, hf_settings, transferlab_assemble  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMON = [
    "model=tiny_t5",
    "objective=seq2seq",
    "freeze=none",
    "tokenizer=train",
    "data.batch_size=32",
    "data.max_train_samples=null",
    "data.train_fraction=1.0",
    "data.max_eval_samples=500",
    *RECIPE,
    "++trainer.num_sanity_val_steps=0",
    "++trainer.check_val_every_n_epoch=100000",  # no validation while training: the bench validates once, after
]
TASKS = {
    "reverse": {
        "overrides": [
            "data=files",
            "tokenizer.vocab_size=2000",
            "data.max_seq_len=32",
            "objective.max_target_len=40",
            "objective.generation.max_new_tokens=40",
        ],
        "steps": 1500,
    },
    "definitions": {
        "overrides": [
            "data=wordnet_definitions",
            "tokenizer.vocab_size=4000",
            "data.max_seq_len=64",
            "objective.max_target_len=64",
            "objective.generation.max_new_tokens=32",
        ],
        "steps": 1500,
    },
}
# factor -> (transferlab overrides, peer changes): one thing changed from the baseline ("none") at a time
FACTORS = {
    "none": ([], {}),
    # seq2seq trains on random batches by default, as the peer; these bucket its training batches by length
    "bucketing": (["data.bucket_by_length=true"], {}),
    "window_8": (["data.bucket_by_length=true", "data.bucket_window=8"], {}),  # windows of 8 batches, not 50
    "peer_bucketing": ([], {"group_by_length": True}),  # the peer groups by length (its LengthGroupedSampler)
    "no_dropout": (["model.config.dropout_rate=0.0"], {"dropout_rate": 0.0}),
    "no_weight_decay": (["optimizer.weight_decay=0.0"], {"weight_decay": 0.0}),
    # the tokenizer both sides use: near character-level (Unigram of 120 pieces), or the default vocabulary size
    "char_tokenizer": (["tokenizer.vocab_size=220"], {}),
    "vocab_8000": (["tokenizer.vocab_size=8000"], {}),
}


def reverse_files() -> list:
    """data.train/validation/test of the reverse task, written once under outputs/bench (ignored by git)."""
    out = WORK / "seq2seq_quality_data" / "reverse"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in ("train", "validation", "test"):
        path = out / f"{split}.jsonl"
        if not path.exists():
            seen, rows = set(), []
            with gzip.open(ROOT / "data" / "wordnet_definitions" / f"{split}.jsonl.gz", "rt") as f:
                for line in f:
                    word = json.loads(line)["source"].split(";")[0].removeprefix("word: ")
                    if re.fullmatch(r"[A-Za-z]+", word) and word not in seen:
                        seen.add(word)
                        rows.append({"source": word, "target": " ".join(reversed(word))})
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(f"data.{split}={path}")
    return paths


def factors(names: str) -> tuple[list, dict]:
    """The transferlab overrides and peer changes of "a+b+...", each a FACTORS key."""
    unknown = [n for n in names.split("+") if n not in FACTORS]
    if unknown:
        raise SystemExit(f"unknown factors {unknown}; choose from {sorted(FACTORS)}")
    overrides, changes = [], {}
    for name in names.split("+"):
        overrides += FACTORS[name][0]
        changes.update(FACTORS[name][1])
    return overrides, changes


def configure(task: str, steps: int, factor: str, seed: int):
    from transferlab.cli.front import compose

    overrides = [*COMMON, *TASKS[task]["overrides"], *factors(factor)[0], f"seed={seed}", f"task_name=bq_{task}"]
    overrides += reverse_files() if task == "reverse" else []
    return compose([*overrides, *LOGGING_OFF, f"trainer.max_steps={steps}"])


def train_transferlab(cfg, run_dir: Path, fit: bool = True):
    """The product: assemble -> trainer.fit; then its own validation (generation and scores) on the sample.
    Without fit: only assembled (the tokenizer and the validation sample the peer needs)."""
    a = transferlab_assemble(cfg, run_dir)
    if not fit:
        return a, 0.0, {}
    start = time.perf_counter()
    a.trainer.fit(a.module, datamodule=a.datamodule)
    seconds = time.perf_counter() - start
    own = a.trainer.validate(a.module, datamodule=a.datamodule, verbose=False)[0]
    return a, seconds, {k: float(v) for k, v in own.items()}


def train_peer(cfg, a, changes: dict, seed: int):
    """transformers.Seq2SeqTrainer on the same train rows, tokenizer and model config."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from transferlab.objectives.seq2seq import clipped, encode_sources

    tokenizer, obj = a.tokenizer, cfg.objective
    source_len, target_len = int(cfg.data.max_seq_len), int(obj.max_target_len)

    def encode(batch):  # the HF translation example's preprocessing, with transferlab's limits
        sources = [ids for ids, _ in encode_sources(tokenizer, obj.source_prefix, batch["source"], source_len)]
        targets = [clipped(ids, target_len)[0] for ids in tokenizer(batch["target"])["input_ids"]]
        return {"input_ids": sources, "attention_mask": [[1] * len(s) for s in sources], "labels": targets}

    train = a.module.objective.raw["train"]
    encoded = train.map(encode, batched=True, remove_columns=train.column_names)
    config = a.module.model.config.__class__.from_dict(a.module.model.config.to_dict())
    if "dropout_rate" in changes:
        config.dropout_rate = changes["dropout_rate"]
    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_config(config)
    settings = {**hf_settings(cfg), **{k: v for k, v in changes.items() if k == "weight_decay"}}
    strategy = "group_by_length" if changes.get("group_by_length") else "random"
    args = hf_arguments(
        WORK / "hf_seq2seq_quality",
        int(cfg.trainer.max_steps),
        **settings,
        args_cls=Seq2SeqTrainingArguments,
        train_sampling_strategy=strategy,
    )
    args.seed = seed
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=encoded,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return model, time.perf_counter() - start


def score(model, tokenizer, cfg, rows, batch_size: int = 64) -> dict:
    """Greedy exact match and teacher-forced token accuracy of `model` on raw rows (source, target)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    from transferlab.objectives.generation import decoded
    from transferlab.objectives.seq2seq import clipped, encode_sources
    from transferlab.objectives.text_scores import normalized

    obj = cfg.objective
    sources = [
        ids for ids, _ in encode_sources(tokenizer, obj.source_prefix, rows["source"], int(cfg.data.max_seq_len))
    ]
    targets = [clipped(ids, int(obj.max_target_len))[0] for ids in tokenizer(rows["target"])["input_ids"]]
    collate = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    model.eval()
    right = hits = tokens = 0
    with torch.no_grad():
        for start in range(0, len(sources), batch_size):
            feats = [
                {"input_ids": s, "attention_mask": [1] * len(s), "labels": t}
                for s, t in zip(sources[start : start + batch_size], targets[start : start + batch_size])
            ]
            batch = collate(feats)
            logits = model(**batch).logits
            scored = batch["labels"] != -100
            hits += int((logits.argmax(-1) == batch["labels"])[scored].sum())
            tokens += int(scored.sum())
            out = model.generate(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                max_new_tokens=int(obj.generation.max_new_tokens),
                num_beams=1,
                do_sample=False,
            )
            for text, ref in zip(decoded(tokenizer, out), rows["target"][start : start + batch_size]):
                right += normalized(text) == normalized(ref)
    model.train()
    return {"exact_match": right / len(sources), "token_acc": hits / tokens}


def main():
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), default="reverse")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the task's)")
    p.add_argument("--factor", default="none", help=f"one thing changed from the baseline, or a+b: {sorted(FACTORS)}")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--runners", default="transferlab,hf_seq2seq_trainer", help="comma-separated subset")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    quiet()
    steps = a.steps or TASKS[a.task]["steps"]
    cfg = configure(a.task, steps, a.factor, a.seed)
    # A run dir's tokenizer/ is reused by every later call: one dir per tokenizer setting
    tokenizer_factor = next((f for f in a.factor.split("+") if f in ("char_tokenizer", "vocab_8000")), "default")
    run_dir = WORK / f"seq2seq_quality_{a.task}_{tokenizer_factor}"
    runners = a.runners.split(",")
    assembled, tl_s, own = train_transferlab(cfg, run_dir, "transferlab" in runners)
    raw = assembled.module.objective.raw["validation"]
    rows_ = {"source": list(raw["source"]), "target": list(raw["target"])}
    results = {}
    if "transferlab" in runners:
        results["transferlab"] = {
            **score(assembled.module.model, assembled.tokenizer, cfg, rows_),
            "own_exact_match": own.get("val/exact_match"),
            "own_token_acc": own.get("val/acc"),
            "train_s": tl_s,
        }
    if "hf_seq2seq_trainer" in runners:
        model, hf_s = train_peer(cfg, assembled, factors(a.factor)[1], a.seed)
        results["hf_seq2seq_trainer"] = {**score(model, assembled.tokenizer, cfg, rows_), "train_s": hf_s}
    title = f"{a.task}, {steps} steps, factor {a.factor}, seed {a.seed}, {len(raw)} validation rows"
    lines = [
        f"### {title}",
        "",
        "| runner | greedy exact match | token acc (teacher-forced) | product's own val EM / acc | train s |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        own_cell = f"{r['own_exact_match']:.3f} / {r['own_token_acc']:.3f}" if "own_exact_match" in r else "-"
        lines.append(f"| {name} | {r['exact_match']:.3f} | {r['token_acc']:.3f} | {own_cell} | {r['train_s']:.0f} |")
    text = "\n".join(lines)
    print(text, flush=True)
    save(f"seq2seq_quality_{a.task}_{a.factor}_s{a.seed}", {"versions": versions(), "args": vars(a), **results})


if __name__ == "__main__":
    main()
