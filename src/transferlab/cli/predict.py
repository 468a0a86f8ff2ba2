"""`transferlab-predict EXPORT INPUT [--out PATH]`: run an export on new, unlabeled data.

EXPORT is an export dir (a run's export/, shared on its own: no run dir is needed). What it predicts follows from its
architecture: a label and its probability (classification; --top-k for more), a tag per word (tagging), an answer
span and its score (extractive QA), generated text (seq2seq and causal LMs). INPUT is a csv/tsv/jsonl/json/parquet/
txt/conll file read by the same readers as data=files (--format squad for SQuAD JSON), or - for stdin (one text a
line). Output: JSONL (or CSV, by --out's extension): each input row as read, its prediction in columns of its own
(predict_input.OUTPUTS; an input column of such a name is refused). Rows are batched by length; a terminal shows
a progress bar.
"""

import argparse
import json
import sys
from pathlib import Path

from transferlab.cli.predict_input import COLUMNS, read
from transferlab.errors import TransferlabError

TASKS = {
    "ForSequenceClassification": "classification",
    "ForTokenClassification": "tagging",
    "ForQuestionAnswering": "qa",
    "ForConditionalGeneration": "generation",
    "ForCausalLM": "generation",
    "LMHeadModel": "generation",
}


def task_of(export: Path) -> tuple[str, str]:
    """(task, architecture) of an export dir, read from its config: the input is checked before weights load."""
    import transformers

    from transferlab.models.hub import check_tokenizer_files

    if not (export / "config.json").is_file():
        raise TransferlabError(f"{export}: not an export dir (no config.json); give a run's export/")
    check_tokenizer_files(export, str(export), "copy the tokenizer files the model was trained with into it")
    if (export / "probe.json").is_file():
        return "classification", "probe"
    architecture = (transformers.AutoConfig.from_pretrained(export).architectures or ["?"])[0]
    task = next((t for suffix, t in TASKS.items() if architecture.endswith(suffix)), None)
    if task is None:
        raise TransferlabError(
            f"{export}: a {architecture}, which predicts nothing transferlab-predict reads (a masked LM's export "
            "fills masks); give the export of a classification, tagging, QA, seq2seq or sft run"
        )
    return task, architecture


def load(export: Path, task: str, architecture: str):
    """(model, tokenizer) of an export dir."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(export)
    if architecture == "probe":
        from transferlab.freeze.probe import load_probe

        return load_probe(export), tokenizer
    auto = {
        "classification": "AutoModelForSequenceClassification",
        "tagging": "AutoModelForTokenClassification",
        "qa": "AutoModelForQuestionAnswering",
    }.get(task)
    if auto is None:
        auto = "AutoModelForSeq2SeqLM" if architecture.endswith("ForConditionalGeneration") else "AutoModelForCausalLM"
    return getattr(transformers, auto).from_pretrained(export).eval(), tokenizer


def _batches(lengths: list, size: int):
    order = sorted(range(len(lengths)), key=lengths.__getitem__)  # by length: little padding
    return [order[i : i + size] for i in range(0, len(order), size)]


def _classify(model, tokenizer, rows: list, columns: dict, top_k: int, device) -> list:
    import torch

    texts = [r[columns["text"]] for r in rows]
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
    with torch.no_grad():
        probs = model(**enc).logits.float().softmax(-1)
    best = probs.topk(min(top_k, probs.size(-1)), dim=-1)
    names = model.config.id2label
    out = []
    for p, i in zip(best.values.tolist(), best.indices.tolist()):
        row = {"pred_label": names[i[0]], "pred_score": round(p[0], 6)}
        if top_k > 1:
            row["pred_top_k"] = [{"label": names[j], "score": round(q, 6)} for q, j in zip(p, i)]
        out.append(row)
    return out


def _tag(model, tokenizer, rows: list, columns: dict, top_k: int, device) -> list:
    import torch

    words = [
        r[columns["tokens"]] if isinstance(r[columns["tokens"]], list) else r[columns["tokens"]].split() for r in rows
    ]
    enc = tokenizer(words, is_split_into_words=True, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**{k: v.to(device) for k, v in enc.items()}).logits.argmax(-1).tolist()
    out = []
    for i, sentence in enumerate(words):
        first = {}
        for j, w in enumerate(enc.word_ids(i)):
            if w is not None and w not in first:
                first[w] = j
        # a word the tokenizer turns into nothing (or cut by the length limit) gets no tag: null, not a guess
        tags = [model.config.id2label[predicted[i][first[w]]] if w in first else None for w in range(len(sentence))]
        out.append({"pred_tags": tags})
    return out


def _answer(model, tokenizer, rows: list, columns: dict, top_k: int, device) -> list:
    import torch

    from transferlab.objectives.spans import best_spans, context_offsets

    limit = min(getattr(model.config, "max_position_embeddings", 512) or 512, 384)
    out = []
    for r in rows:
        question, context = r[columns["question"]], r[columns["context"]]
        enc = tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=limit,
            stride=min(128, limit // 4),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping").tolist()
        enc.pop("overflow_to_sample_mapping", None)
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in enc.items()})
        spans = []
        for w in range(len(offsets)):
            starts, ends = context_offsets(offsets[w], enc.sequence_ids(w))
            spans += best_spans(
                logits.start_logits[w].float().tolist(), logits.end_logits[w].float().tolist(), starts, ends, 20, 30
            )
        best = max(spans, default=None)
        out.append(
            {
                "pred_answer": context[best[1] : best[2]] if best else "",
                "pred_score": round(best[0], 4) if best else None,
                "pred_start": best[1] if best else None,
            }
        )
    return out


PREDICT = {"classification": _classify, "tagging": _tag, "qa": _answer}


def predict(
    task: str,
    model,
    tokenizer,
    rows: list,
    columns: dict,
    batch_size: int,
    top_k: int,
    generation,
    device,
    progress: bool,
) -> list:
    """The prediction of every row (a list of dicts), in the input's order."""
    if task == "generation":
        from transferlab.cli.generate import generations

        texts = generations(model, tokenizer, [r[columns["source"]] for r in rows], generation, 0)
        return [{"pred_generation": t} for t in _progress(texts, len(rows), progress)]
    first = next(iter(columns.values()))
    lengths = [len(str(r[first])) for r in rows]
    out = [None] * len(rows)
    for batch in _progress(_batches(lengths, batch_size), -(-len(rows) // batch_size), progress):
        for i, result in zip(batch, PREDICT[task](model, tokenizer, [rows[i] for i in batch], columns, top_k, device)):
            out[i] = result
    return out


def _progress(items, total: int, show: bool):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="predict", file=sys.stderr)


def write(path: str | None, rows: list, predictions: list) -> None:
    """Each row as read, then its prediction. CSV: a string cell as it is, a missing one empty, anything else (a list,
    a number or a boolean read from JSON) as JSON writes it."""
    merged = [{**row, **pred} for row, pred in zip(rows, predictions)]
    if path and path.endswith(".csv"):
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(merged[0]))
            writer.writeheader()
            for row in merged:
                writer.writerow(
                    {
                        k: v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                        for k, v in row.items()
                    }
                )
        return
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in merged)
    if path:
        Path(path).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


def main(argv=None) -> None:
    from omegaconf import OmegaConf

    from transferlab.cli.front import report
    from transferlab.objectives.generation import GenerationConfig

    parser = argparse.ArgumentParser(prog="transferlab-predict", description=__doc__.splitlines()[0])
    parser.add_argument("export", help="an export dir (a run's export/)")
    parser.add_argument("input", help="a data file (the formats of data=files), or - for stdin, one text a line")
    parser.add_argument("--out", help="output file: .jsonl (default: stdout) or .csv")
    parser.add_argument(
        "--format", default="auto", help="the input's format when its extension does not say (e.g. squad, conll)"
    )
    for field in sorted({f for c in COLUMNS.values() for f in c}):
        parser.add_argument(f"--{field}-column", help=f"the input column holding the {field} (default: {field})")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=1, help="classification: the k most likely labels")
    parser.add_argument(
        "--max-new-tokens", type=int, default=GenerationConfig().max_new_tokens, help="generation: new tokens (greedy)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        for flag in ("top_k", "batch_size", "max_new_tokens"):
            if getattr(args, flag) < 1:
                raise TransferlabError(f"--{flag.replace('_', '-')}={getattr(args, flag)} must be >= 1")
        import torch

        task, architecture = task_of(Path(args.export))
        renamed = {f: getattr(args, f"{f}_column") for f in COLUMNS[task] if getattr(args, f"{f}_column")}
        columns = {f: renamed.get(f, f) for f in COLUMNS[task]}
        ds = read(args.input, args.format, task, renamed)
        model, tokenizer = load(Path(args.export), task, architecture)
        device = torch.device(args.device)
        model.to(device)
        generation = OmegaConf.structured(GenerationConfig(max_new_tokens=args.max_new_tokens))
        rows = ds.to_list()
        predictions = predict(
            task, model, tokenizer, rows, columns, args.batch_size, args.top_k, generation, device, sys.stderr.isatty()
        )
        write(args.out, rows, predictions)
    except Exception as e:
        report(e, args.verbose)
        sys.exit(2 if isinstance(e, TransferlabError) else 1)


if __name__ == "__main__":
    main()
