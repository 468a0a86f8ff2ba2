"""Extractive QA: answers to window targets and back through the offsets, windows across long contexts (an answer
crossing a window's edge counted), SQuAD and flat files, bad inputs, and a tiny run whose export, loaded
by transformers, answers alike."""

import json
import random
import subprocess
import sys

import pytest
from datasets import Dataset
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError
from transferlab.models.tokenizer import _train_wordpiece
from transferlab.objectives.extractive_qa import ExtractiveQA
from transferlab.objectives.spans import NO_CONTEXT, answer_tokens, best_spans

CLI = [sys.executable, "-m", "transferlab.train"]
WORDS = "red green blue black white pink gold grey".split()
FILLER = "we saw a big old house near the small river and then walked home".split()


@pytest.fixture(scope="module")
def wordpiece():
    texts = [" ".join(FILLER + WORDS), "which colour is the door ? the door is painted", "unbelievable"] * 50
    return _train_wordpiece(iter([texts]), vocab_size=150, min_frequency=1, lowercase=True)


def _rows(n: int, seed: int, filler: int = 6) -> list:
    """Questions whose answer is the colour after 'the door is painted', amid filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        before = " ".join(rng.choices(FILLER, k=rng.randint(0, filler)))
        colour = rng.choice(WORDS)
        context = (
            f"{before} the door is painted {colour} {' '.join(rng.choices(FILLER, k=rng.randint(0, filler)))}".strip()
        )
        start = context.index(f"painted {colour}") + len("painted ")
        rows.append(
            {
                "id": f"q{i}",
                "question": "which colour is the door ?",
                "context": context,
                "answers": {"text": [colour], "answer_start": [start]},
            }
        )
    return rows


def _objective(tokenizer, max_seq_len=32, doc_stride=8):
    cfg = OmegaConf.create(
        {
            "name": "extractive_qa",
            "max_seq_len": max_seq_len,
            "doc_stride": doc_stride,
            "max_answer_len": 30,
            "n_best": 20,
        }
    )
    return ExtractiveQA(cfg, OmegaConf.create({"max_seq_len": max_seq_len, "num_proc": None}), tokenizer, None)


def test_an_answer_maps_to_its_tokens_and_back_even_when_a_word_is_several_pieces(wordpiece):
    context = "an unbelievably house"  # a word the vocabulary lacks: unbel ##iev ##ab ##l ##y
    enc = wordpiece("q ?", context, return_offsets_mapping=True)
    from transferlab.objectives.spans import context_offsets

    starts, ends = context_offsets(enc["offset_mapping"], enc.sequence_ids())
    pieces = [t for t, s in zip(enc.tokens(), enc.sequence_ids()) if s == 1]
    assert len(pieces) > 3  # "unbelievably" is several word pieces
    start, end, cut = answer_tokens(starts, ends, 3, 15)  # "unbelievably"
    assert not cut and end > start and context[starts[start] : ends[end]] == "unbelievably"
    # the best span from logits that point at those tokens reads back the same text
    start_logits = [5.0 if i == start else 0.0 for i in range(len(starts))]
    end_logits = [5.0 if i == end else 0.0 for i in range(len(starts))]
    score, a, b = best_spans(start_logits, end_logits, starts, ends, n_best=5, max_len=30)[0]
    assert context[a:b] == "unbelievably" and score == 10.0
    assert starts[0] == NO_CONTEXT  # the first token ([CLS]) is not context
    # never a span starting outside the context, ending before it starts, or longer than max_len tokens
    high_outside = [9.0] + start_logits[1:]
    assert best_spans(high_outside, end_logits, starts, ends, 5, 30)[0][1:] == [starts[start], ends[end]]
    backwards = [5.0 if i == start - 1 else 0.0 for i in range(len(starts))]
    assert all(a <= b for _, a, b in best_spans(start_logits, backwards, starts, ends, 20, 30))
    single = {(starts[i], ends[i]) for i in range(len(starts))}
    assert all((a, b) in single for _, a, b in best_spans(start_logits, end_logits, starts, ends, 20, 1))


def test_long_contexts_are_windowed_and_an_answer_crossing_a_window_edge_is_counted(wordpiece, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    words = FILLER * 3
    context = " ".join(words[:20] + ["red", "green"] + words[20:])
    start = context.index("red green")
    ds = Dataset.from_list(
        [
            {
                "question": "which colour is the door ?",
                "context": context,
                "answers": {"text": ["red green"], "answer_start": [start]},
            }
        ]
    )
    objective = _objective(wordpiece, max_seq_len=24, doc_stride=8)
    rows = objective.prepare("validation", ds)
    assert len(rows) > 3 and set(rows.columns["example"].tolist()) == {0}  # several windows of one example
    held = cut = 0
    for i in range(len(rows)):
        item = rows[i]
        s, e = int(item["start"]), int(item["end"])
        if s:  # a window holding the whole answer: its targets read back as the answer's text
            held += 1
            assert context[item["offset_start"][s] : item["offset_end"][e]] == "red green"
        cut += int(rows.columns["cut"][i])
    assert held >= 1 and cut >= 1  # windows overlap: one holds it, a neighbour cuts it at its edge
    assert objective.stats == {"validation_windows": len(rows), "validation_windows_cut": cut}
    # windows overlap by doc_stride tokens: every context token is in some window
    covered = {int(a) for i in range(len(rows)) for a in rows[i]["offset_start"] if a != NO_CONTEXT}
    token_starts = {
        a for a, _ in wordpiece(context, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    }
    assert covered == token_starts


def test_evaluation_takes_the_best_span_over_an_examples_windows_and_scores_it_as_squad(
    wordpiece, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    ds = Dataset.from_list(_rows(2, 0))
    objective = _objective(wordpiece)
    objective.prepare("test", ds)
    c1 = ds[1]["context"]
    right = ds[0]["answers"]["answer_start"][0]
    records = [
        {"id": 0, "example": 0, "spans": [[1.0, 0, 2]]},
        {"id": 1, "example": 0, "spans": [[3.0, right, right + len(ds[0]["answers"]["text"][0])]]},  # the better window
        {"id": 2, "example": 1, "spans": [[2.0, 0, len(c1.split()[0])]]},
    ]
    assert objective.evaluate("test", records) == {"exact_match": 0.5, "f1": 0.5}  # example 1 got a filler word
    rows = objective.written("test", records)
    assert [r["prediction"] for r in rows] == [ds[0]["answers"]["text"][0], c1.split()[0]] and rows[0]["score"] == 3.0


def test_squad_json_and_flat_answer_columns_read_as_one_layout(tmp_path):
    from transferlab.data.files import read_file

    squad = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "the door is painted red",
                        "qas": [
                            {"id": "a", "question": "which colour?", "answers": [{"text": "red", "answer_start": 20}]}
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    ds = read_file(str(tmp_path / "dev.json"), "test", "strict", "squad")
    assert ds[0] == {
        "id": "a",
        "question": "which colour?",
        "context": "the door is painted red",
        "answers": {"text": ["red"], "answer_start": [20]},
    }
    (tmp_path / "flat.csv").write_text(
        "question,context,answer_text,answer_start\nwhich colour?,the door is painted red,red,20\n"
    )
    flat = ExtractiveQA.reshape(
        read_file(str(tmp_path / "flat.csv"), "train", "strict"), OmegaConf.create({"label_column": "answers"})
    )
    assert flat[0]["answers"] == {"text": ["red"], "answer_start": [20]} and "answer_text" not in flat.column_names


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.slow  # a CLI subprocess
def test_a_question_too_long_for_its_window_fails_in_one_line_before_training(tmp_path):
    """(Misplaced answers and questions without one are in the bad-input catalogue: they fail before any tokenizer.)"""
    rows = _rows(5, 0)
    rows[2] = {**rows[2], "question": "which colour " * 40}
    train = _write_jsonl(tmp_path / "train.jsonl", _rows(40, 1))
    test = _write_jsonl(tmp_path / "test.jsonl", rows)
    out = subprocess.run(
        [
            *CLI,
            "experiment=qa",
            "data=files",
            f"data.train={train}",
            f"data.test={test}",
            "objective.doc_stride=8",
            "tokenizer.vocab_size=100",
            "data.max_seq_len=32",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 1 and last.startswith("error: data.test: the question 'which colour which colour"), (
        out.stderr[-2000:]
    )
    assert (
        "is 80 tokens, which leaves 0 of objective.max_seq_len=32 for its context of 14, not more than "
        "objective.doc_stride=8; "
        "raise objective.max_seq_len (data.max_seq_len), lower objective.doc_stride, or shorten the question"
    ) in last
    assert (
        not (tmp_path / "run" / "checkpoints").exists()
        and json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"
    )


def test_a_slow_tokenizer_is_refused_in_one_line():
    class Slow:
        is_fast = False

    with pytest.raises(TransferlabError, match="objective=extractive_qa needs a fast tokenizer"):
        _objective(Slow())


@pytest.mark.slow
def test_a_tiny_qa_run_answers_and_its_export_loaded_by_transformers_answers_alike(tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    train = _write_jsonl(tmp_path / "train.jsonl", _rows(600, 0))
    test = _write_jsonl(tmp_path / "test.jsonl", _rows(40, 1))
    run = tmp_path / "run"
    out = subprocess.run(
        [
            *CLI,
            "experiment=qa",
            "data=files",
            f"data.train={train}",
            f"data.test={test}",
            "trainer.max_epochs=6",
            "tokenizer.vocab_size=120",
            "logger=none",
            "callbacks.progress_bar=false",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["test/exact_match"] > 0.9 and metrics["test/f1"] >= metrics["test/exact_match"]
    )  # an easy pattern, learned
    assert metrics["data/test_windows"] == 40 and metrics["data/test_windows_cut"] == 0
    answers = [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [a["example"] for a in answers] == list(range(40)) and (run / "predictions" / "validation.jsonl").is_file()
    exact = sum(a["prediction"] in a["answers"] for a in answers) / len(answers)
    assert exact == pytest.approx(metrics["test/exact_match"])

    # the export's model card: Hub front matter with the test metrics, then how to reproduce and load it
    import yaml

    card = (run / "export" / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["pipeline_tag"] == "question-answering" and front["library_name"] == "transformers"
    assert (
        front["tags"] == ["transferlab", "extractive_qa", "freeze-none"]
        and front["datasets"] == ["files"]
        and "base_model" not in front
    )
    scored = {m["name"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert scored == {k: pytest.approx(v, abs=1e-6) for k, v in metrics.items() if k.startswith("test/")}
    assert (
        "transferlab-train experiment=qa data=files" in card and "AutoModelForQuestionAnswering.from_pretrained" in card
    )

    # transformers 5 removed the question-answering pipeline: the export is read as that pipeline read it (the
    # AutoModelForQuestionAnswering + tokenizer pair) and decoded independently, vectorised: the best start + end
    # logit over context tokens with start <= end < start + 30.
    model = AutoModelForQuestionAnswering.from_pretrained(run / "export").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    for a in answers:
        enc = tokenizer(a["question"], a["context"], return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0]
        with torch.no_grad():
            out = model(**enc)
        context = torch.tensor([s == 1 for s in enc.sequence_ids()])
        scores = out.start_logits[0][:, None] + out.end_logits[0][None, :]
        allowed = context[:, None] & context[None, :] & torch.ones_like(scores, dtype=torch.bool).triu().tril(29)
        best = int(scores.masked_fill(~allowed, float("-inf")).argmax())
        start, end = divmod(best, scores.size(1))
        assert a["context"][int(offsets[start][0]) : int(offsets[end][1])] == a["prediction"]
