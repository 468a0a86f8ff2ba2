"""SQuAD JSON (data.format=squad), v1.1 and v2.0: {"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}, ...], "is_impossible" (v2)}]}]}]}, read into flat rows {"id",
"question", "context", "answers": {"text": [...], "answer_start": [...]}} (the layout of flat QA files and of the
hub's squad and squad_v2). A v2 question with is_impossible true has no answer (empty lists); its
plausible_answers are not read."""

import gzip
import json
from pathlib import Path

from transferlab.errors import TransferlabError

_LAYOUT = (
    "data.format=squad reads SQuAD v1.1/v2.0 JSON "
    '({"data": [{"paragraphs": [{"context": ..., "qas": [{"question": ..., "answers": [...]}]}]}]})'
)


def _list(path: str, where: str, value) -> list:
    if not isinstance(value, list):
        raise TransferlabError(f"{path}: {where} is not a list ({type(value).__name__}); {_LAYOUT}")
    return value


def _dict(path: str, where: str, value) -> dict:
    if not isinstance(value, dict):
        raise TransferlabError(f"{path}: {where} is not an object ({type(value).__name__}); {_LAYOUT}")
    return value


def _answers(path: str, where: str, qa: dict) -> dict:
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise TransferlabError(f"{path}: {where}.is_impossible is {impossible!r}; give true or false")
    answers = _list(path, f"{where}.answers", qa.get("answers", [] if impossible else None))
    if impossible and answers:
        raise TransferlabError(
            f"{path}: {where} has is_impossible true and {len(answers)} answers; empty its answers (a guess goes "
            "in plausible_answers) or set is_impossible false"
        )
    return {
        "text": [a["text"] for a in answers],
        "answer_start": [int(a["answer_start"]) for a in answers],
    }


def _rows(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            document = json.load(f)
        except ValueError as e:
            raise TransferlabError(f"{path}: not valid JSON ({e}); {_LAYOUT}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise TransferlabError(f"{path}: no top-level 'data' list; {_LAYOUT}; flat rows are read as json/jsonl")
    for a, article in enumerate(document["data"]):
        paragraphs = _list(path, f"data[{a}].paragraphs", _dict(path, f"data[{a}]", article).get("paragraphs", []))
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            qas = _list(path, f"{where}.qas", _dict(path, where, paragraph).get("qas", []))
            for q, qa in enumerate(qas):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                try:
                    yield {
                        "id": str(_dict(path, where, qa).get("id", where)),
                        "question": qa["question"],
                        "context": paragraph["context"],
                        "answers": _answers(path, where, qa),
                    }
                except (KeyError, TypeError, ValueError) as e:
                    raise TransferlabError(
                        f"{path}: {where} lacks or mistypes {e}; each question needs 'question' and "
                        "'answers' [{'text', 'answer_start'}] (or v2's is_impossible true), each paragraph a 'context'"
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
