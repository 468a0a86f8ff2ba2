"""Extractive QA with unanswerable questions (SQuAD v2): null answers label to the first token, the answer-or-nothing
decision on fixed logits, the null threshold tuned on validation only and kept with its checkpoint, SQuAD v2's
scores on a hand-computed case, SQuAD v1/v2 JSON and its errors, and predict giving no answer through an export."""

import json
import math
import subprocess
import sys

import pytest
from datasets import Dataset
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError
from transferlab.models.tokenizer import _train_wordpiece
from transferlab.objectives.extractive_qa import ExtractiveQA
from transferlab.objectives.qa_postprocess import answerable, best_threshold, null_margin, null_of, v2_metrics
from transferlab.objectives.qa_rows import check_no_answers

FILLER = "we saw a big old house near the small river and then walked home".split()
QUESTION = "which colour is the door ?"


@pytest.fixture(scope="module")
def wordpiece():
    texts = [" ".join(FILLER + ["red", "green", "blue"]), "which colour is the door ? the door is painted"] * 50
    return _train_wordpiece(iter([texts]), vocab_size=150, min_frequency=1, lowercase=True)


def _objective(tokenizer, max_seq_len=24, **options):
    cfg = {"name": "extractive_qa", "max_seq_len": max_seq_len, "doc_stride": 8, "max_answer_len": 30, "n_best": 20}
    cfg = OmegaConf.create({**cfg, "allow_no_answer": True, "null_threshold": 0.0, "tune_null_threshold": False})
    cfg = OmegaConf.merge(cfg, options)
    return ExtractiveQA(cfg, OmegaConf.create({"max_seq_len": max_seq_len, "num_proc": None}), tokenizer, None)


def _qa(context: str, answer: str | None) -> dict:
    answers = {"text": [], "answer_start": []}
    if answer:
        answers = {"text": [answer], "answer_start": [context.index(answer)]}
    return {"question": QUESTION, "context": context, "answers": answers}


def test_unanswerable_questions_and_windows_without_the_answer_point_at_the_first_token(
    wordpiece, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    long = " ".join(FILLER * 2 + ["the", "door", "is", "red"])  # the answer in its last window(s) only
    ds = Dataset.from_list([_qa(long, "red"), _qa(" ".join(FILLER * 2), None)])
    objective = _objective(wordpiece)
    rows = objective.prepare("train", ds)
    targets = {0: [], 1: []}
    for i in range(len(rows)):
        s, e = int(rows[i]["start"]), int(rows[i]["end"])
        targets[int(rows.columns["example"][i])].append((s, e))
        if (s, e) != (0, 0):  # a window holding the answer points at it
            assert 0 < s <= e and long[rows[i]["offset_start"][s] : rows[i]["offset_end"][e]] == "red"
    assert len(targets[1]) > 1 and set(targets[1]) == {(0, 0)}  # every window of the unanswerable question
    held = [t for t in targets[0] if t != (0, 0)]
    assert held and (0, 0) in targets[0] and targets[0][0] == (0, 0)  # its first windows lack the answer
    assert objective.stats["train_windows_cut"] == 0


def test_no_answer_is_predicted_where_the_null_score_beats_the_best_span_by_more_than_the_threshold():
    from transferlab.objectives.spans import best_spans

    # one question over two windows: window 1 proposes "red" (3.0 + 2.5 = 5.5); null scores 7.0 and 6.0
    starts, ends = [-1, 0, 4], [-1, 3, 9]
    spans = [best_spans([3.0, 1.0, 0.0], [4.0, 0.5, 0.0], starts, ends, 20, 30)]
    spans.append(best_spans([2.0, 3.0, 0.0], [4.0, 2.5, 0.0], starts, ends, 20, 30))
    best = max((s[0] for s in spans), key=lambda span: span[0])
    assert best == [5.5, 0, 3]
    null = null_of([(0, 3.0 + 4.0), (0, 2.0 + 4.0)])[0]
    assert null == 6.0  # the smallest over the question's windows, as HF's SQuAD v2 post-processing takes it
    margin = null_margin(null, best)
    assert margin == 0.5
    assert not answerable(margin, 0.0) and not answerable(margin, 0.49)  # null wins by more than the threshold
    assert answerable(margin, 0.5) and answerable(margin, 1.0)  # not by more: the span
    assert null_margin(1.0, None) == math.inf and not answerable(math.inf, 1e9)  # no span at all: no answer


def _records(spans_and_nulls: list) -> list:
    return [{"id": i, "example": i, "spans": [s] if s else [], "null": n} for i, (s, n) in enumerate(spans_and_nulls)]


def test_the_null_threshold_is_tuned_on_validation_kept_with_the_checkpoint_and_never_tuned_on_test(
    wordpiece, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    red = "the door is red"
    objective = _objective(wordpiece, tune_null_threshold=True)
    # validation: margins (null - span) 1.0 for an answerable question whose span is right, 3.0 for an unanswerable
    # one: any threshold in [1.0, 3.0) gets both right; the search returns 1.0
    val = Dataset.from_list([_qa(red, "red"), _qa(red, None)])
    objective.prepare("validation", val)
    found = objective.evaluate("val", _records([([2.0, 12, 15], 3.0), ([2.0, 12, 15], 5.0)]))
    assert found == {"exact_match": 1.0, "f1": 1.0, "has_ans_f1": 1.0, "no_ans_acc": 1.0, "null_threshold": 1.0}
    assert objective.cfg.null_threshold == 1.0  # the export's config records it
    # test, planted to prefer another threshold (margins 4.0 answerable, 6.0 unanswerable: [4.0, 6.0) fits both)
    test = Dataset.from_list([_qa(red, "red"), _qa(red, None)])
    objective.prepare("test", test)
    planted = _records([([2.0, 12, 15], 6.0), ([2.0, 12, 15], 8.0)])
    assert best_threshold([(["red"], "red", 4.0), ([], "red", 6.0)]) == 4.0
    scored = objective.evaluate("test", planted)
    assert scored == {"exact_match": 0.5, "f1": 0.5, "has_ans_f1": 0.0, "no_ans_acc": 1.0, "null_threshold": 1.0}
    assert objective.metrics.null_threshold.value == 1.0
    assert [r["prediction"] for r in objective.written("test", planted)] == ["", ""]

    # the value travels in the module's state dict: a checkpoint's test uses the value tuned for its weights
    saved = objective.metrics.state_dict()
    assert list(saved) == ["null_threshold._extra_state"] and saved["null_threshold._extra_state"].shape == ()
    other = _objective(wordpiece, tune_null_threshold=True)
    other.prepare("test", test)
    other.metrics.load_state_dict(saved)
    assert other.evaluate("test", planted)["null_threshold"] == 1.0 and other.cfg.null_threshold == 1.0

    # untuned: the configured threshold, on every stage
    fixed = _objective(wordpiece, null_threshold=5.0)
    fixed.prepare("validation", val)
    assert fixed.evaluate("val", _records([([2.0, 12, 15], 3.0), ([2.0, 12, 15], 5.0)]))["no_ans_acc"] == 0.0
    assert fixed.cfg.null_threshold == 5.0 and not hasattr(fixed.metrics, "null_threshold")


def test_the_search_predicts_nothing_for_all_when_that_is_best():
    # every span is wrong: predicting "" everywhere wins, with a threshold below every margin (not 0.0)
    assert best_threshold([(["red"], "blue", 2.0), ([], "blue", 3.0)]) == 1.0
    assert best_threshold([(["red"], "red", -2.0), ([], "red", math.inf)]) == -2.0


def test_v2_scores_are_squad_v2s_on_a_hand_computed_case():
    questions = [
        (["the red door"], "Red door!"),  # normalised alike: exact 1, f1 1
        (["red door", "blue"], "a red house"),  # best gold "red door": 1 common of 2/2 -> f1 0.5, exact 0
        ([], ""),  # unanswerable, predicted empty: 1 and 1
        ([], "door"),  # unanswerable, answered: 0 and 0
        (["green"], ""),  # answerable, predicted empty: 0 and 0
    ]
    scores = v2_metrics(questions)
    assert scores == {
        "exact_match": pytest.approx(2 / 5),
        "f1": pytest.approx(2.5 / 5),
        "has_ans_f1": pytest.approx(1.5 / 3),
        "no_ans_acc": pytest.approx(1 / 2),
    }
    # on answerable questions alone they are SQuAD v1.1's (torchmetrics)
    from torchmetrics.functional.text import squad

    answerable_only = [q for q in questions if q[0]]
    preds = [{"id": str(i), "prediction_text": p} for i, (_, p) in enumerate(answerable_only)]
    target = [
        {"id": str(i), "answers": {"text": g, "answer_start": [0] * len(g)}} for i, (g, _) in enumerate(answerable_only)
    ]
    reference = squad(preds, target)
    ours = v2_metrics(answerable_only)
    assert ours["exact_match"] == pytest.approx(float(reference["exact_match"]) / 100)
    assert ours["f1"] == pytest.approx(float(reference["f1"]) / 100) and "no_ans_acc" not in ours


def _split(rows: list):
    return Dataset.from_list(rows)


def test_allow_no_answer_null_follows_the_data_and_false_refuses_in_one_line():
    answered, unanswered = _qa("the door is red", "red"), _qa("the door is red", None)

    def cfg(allow, tune=False):
        return OmegaConf.create(
            {
                "objective": {"allow_no_answer": allow, "tune_null_threshold": tune},
                "data": {"source": "files", "name": "files", "train": "t.json", "validation": "v.json", "test": None},
            }
        )

    v1, v2 = {"train": _split([answered] * 2)}, {"train": _split([answered]), "validation": _split([unanswered])}
    for splits, allowed in ((v1, False), (v2, True)):
        c = cfg(None)
        check_no_answers(splits, c)
        assert c.objective.allow_no_answer is allowed
    with pytest.raises(TransferlabError) as e:
        check_no_answers(v2, cfg(False))
    assert str(e.value) == (
        "data.validation (v.json): the question 'which colour is the door ?' has no answer; with "
        "objective.allow_no_answer=false extractive_qa needs at least one per question (SQuAD v1.1); "
        "set objective.allow_no_answer=true to train on unanswerable questions (SQuAD v2)"
    )
    with pytest.raises(TransferlabError, match="objective.tune_null_threshold=true, but no split holds a question"):
        check_no_answers(v1, cfg(None, tune=True))


SQUAD_V2 = {
    "version": "v2.0",
    "data": [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": "the door is painted red",
                    "qas": [
                        {
                            "id": "a",
                            "question": "which colour?",
                            "answers": [{"text": "red", "answer_start": 20}],
                            "is_impossible": False,
                        },
                        {
                            "id": "b",
                            "question": "which size?",
                            "answers": [],
                            "plausible_answers": [{"text": "painted", "answer_start": 12}],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        }
    ],
}


def test_squad_v1_and_v2_json_read_as_rows_and_flat_empty_answers_as_none(tmp_path):
    import gzip

    from transferlab.data.files import read_file

    path = tmp_path / "dev-v2.0.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(SQUAD_V2, f)
    ds = read_file(str(path), "test", "strict", "squad")
    assert ds.to_list() == [
        {"id": "a", "question": "which colour?", "context": "the door is painted red",
         "answers": {"text": ["red"], "answer_start": [20]}},
        {"id": "b", "question": "which size?", "context": "the door is painted red",
         "answers": {"text": [], "answer_start": []}},
    ]  # fmt: skip
    qas = [{"question": "q", "answers": [{"text": "b", "answer_start": 1}]}]
    v1 = {"data": [{"paragraphs": [{"context": "ab", "qas": qas}]}]}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    row = read_file(str(tmp_path / "v1.json"), "train", "strict", "squad")[0]
    assert row["answers"] == {"text": ["b"], "answer_start": [1]} and row["id"] == "data[0].paragraphs[0].qas[0]"
    # flat columns (a CSV): both answer cells empty is a question with no answer
    (tmp_path / "flat.csv").write_text("question,context,answer_text,answer_start\nq?,the door,door,4\nq?,the door,,\n")
    flat = ExtractiveQA.reshape(read_file(str(tmp_path / "flat.csv"), "train", "strict"), OmegaConf.create(
        {"label_column": "answers"}))  # fmt: skip
    assert flat["answers"] == [{"text": ["door"], "answer_start": [4]}, {"text": [], "answer_start": []}]


@pytest.mark.parametrize(
    "document, message",
    [
        ({"data": [{"paragraphs": {}}]}, "data[0].paragraphs is not a list (dict); data.format=squad reads SQuAD"),
        ({"data": ["x"]}, "data[0] is not an object (str); data.format=squad reads SQuAD"),
        ({"data": [{"paragraphs": [{"context": "a", "qas": [{"question": "q", "is_impossible": "no"}]}]}]},
         "data[0].paragraphs[0].qas[0].is_impossible is 'no'; give true or false"),
        ({"data": [{"paragraphs": [{"context": "a b", "qas": [{"question": "q", "is_impossible": True,
                                                                 "answers": [{"text": "b", "answer_start": 2}]}]}]}]},
         "data[0].paragraphs[0].qas[0] has is_impossible true and 1 answers; empty its answers (a guess goes in "
         "plausible_answers) or set is_impossible false"),
        ({"data": [{"paragraphs": [{"context": "a", "qas": [{"question": "q"}]}]}]},
         "data[0].paragraphs[0].qas[0].answers is not a list (NoneType)"),
        ({"data": [{"paragraphs": [{"qas": [{"question": "q", "answers": []}]}]}]},
         "data[0].paragraphs[0].qas[0] lacks or mistypes 'context'"),
    ],
)  # fmt: skip
def test_malformed_squad_json_fails_in_one_line_naming_the_file_and_the_json_path(tmp_path, document, message):
    from transferlab.data.files import read_file

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(TransferlabError) as e:
        read_file(str(path), "train", "strict", "squad")
    assert str(e.value).startswith(f"{path}: {message}") and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory):
    """A short experiment=qa_v2 run on a slice of the embedded data (threshold tuned on validation)."""
    tmp = tmp_path_factory.mktemp("qa_v2")
    run = tmp / "run"
    overrides = [
        "experiment=qa_v2",
        "debug=fast",
        "data.max_train_samples=256",
        "data.max_eval_samples=64",
        "tokenizer.vocab_size=400",
        "logger=none",
        "callbacks.progress_bar=false",
        f"hydra.run.dir={run}",
    ]
    env = {**__import__("os").environ, "TRANSFERLAB_CACHE": str(tmp / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "transferlab.train", *overrides], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_qa_v2_run_reports_v2_metrics_and_its_export_keeps_the_tuned_threshold(v2_run):
    metrics = json.loads((v2_run / "metrics.json").read_text())
    for stage in ("val", "test"):
        assert {f"{stage}/{k}" for k in ("exact_match", "f1", "has_ans_f1", "no_ans_acc", "null_threshold")} <= set(
            metrics
        )
    assert metrics["test/null_threshold"] == metrics["val/null_threshold"]  # debug=fast: one validation, one ckpt
    record = json.loads((v2_run / "export" / "transferlab.json").read_text())["objective_config"]
    assert record["allow_no_answer"] is True  # null in the preset: the data holds unanswerable questions
    assert record["null_threshold"] == pytest.approx(metrics["val/null_threshold"])
    written = [json.loads(line) for line in (v2_run / "predictions" / "test.jsonl").read_text().splitlines()]
    empty = [w["answers"] == [] for w in written]
    predicted_empty = [w["prediction"] == "" for w in written]
    no_ans_acc = sum(e and p for e, p in zip(empty, predicted_empty)) / sum(empty)
    assert no_ans_acc == pytest.approx(metrics["test/no_ans_acc"])


@pytest.mark.slow
def test_predict_gives_no_answer_where_the_exports_null_threshold_says_so(v2_run, tmp_path, capsys):
    import shutil

    import torch
    from transformers import AutoModelForQuestionAnswering

    from transferlab.cli.predict import main

    # equal logits everywhere: the null score (0) equals the best span's (0), a margin of 0
    export = tmp_path / "export"
    shutil.copytree(v2_run / "export", export)
    model = AutoModelForQuestionAnswering.from_pretrained(export)
    with torch.no_grad():
        model.qa_outputs.weight.zero_()
        model.qa_outputs.bias.zero_()
    model.save_pretrained(export)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "Which word means: a vessel?", "context": "we sailed the old boat"}) + "\n")
    answers = {}
    for threshold in (-1.0, 1.0):
        record = json.loads((export / "transferlab.json").read_text())
        record["objective_config"]["null_threshold"] = threshold
        (export / "transferlab.json").write_text(json.dumps(record))
        capsys.readouterr()
        main([str(export), str(rows)])
        answers[threshold] = json.loads(capsys.readouterr().out.splitlines()[0])
    assert answers[-1.0]["pred_answer"] == "" and answers[-1.0]["pred_start"] is None
    assert answers[1.0]["pred_answer"] != "" and answers[1.0]["pred_answer"] in "we sailed the old boat"
