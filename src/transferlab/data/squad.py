"""SQuAD v1.1 JSON (data.format=squad): {"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}, ...]}]}]}]}, read into flat rows {"id", "question", "context", "answers":
{"text": [...], "answer_start": [...]}} (the layout of flat QA files and of the hub's squad)."""

import gzip
import json
from pathlib import Path

from transferlab.errors import TransferlabError


def _rows(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            document = json.load(f)
        except ValueError as e:
            raise TransferlabError(f"{path}: not valid JSON ({e}); data.format=squad reads SQuAD v1.1 JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise TransferlabError(
            f"{path}: no top-level 'data' list; data.format=squad reads SQuAD v1.1 JSON "
            '({"data": [{"paragraphs": [...]}]}); flat rows are read as json/jsonl'
        )
    for a, article in enumerate(document["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                try:
                    answers = qa["answers"]
                    yield {
                        "id": str(qa.get("id", where)),
                        "question": qa["question"],
                        "context": paragraph["context"],
                        "answers": {
                            "text": [x["text"] for x in answers],
                            "answer_start": [int(x["answer_start"]) for x in answers],
                        },
                    }
                except (KeyError, TypeError, ValueError) as e:
                    raise TransferlabError(
                        f"{path}: {where} lacks or mistypes {e}; each question needs 'question' and "
                        "'answers' [{'text', 'answer_start'}], each paragraph a 'context'"
                    ) from None


def read_squad(path: Path):
    """A datasets.Dataset of the file's questions, one row each."""
    from datasets import Features, Sequence, Value

    from transferlab.data.readers import from_rows

    features = Features(
        {
            "id": Value("string"),
            "question": Value("string"),
            "context": Value("string"),
            "answers": {"text": Sequence(Value("string")), "answer_start": Sequence(Value("int32"))},
        }
    )
    return from_rows(_rows, features, path)
