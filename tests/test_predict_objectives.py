"""transferlab-predict through the objectives: a run's export names its objective (export/transferlab.json), and
predict, on the run's own test file, gives what the run's evaluation gave: the labels its test step scored, the tags
its test records hold, the answers and generated texts of <run>/predictions/test.jsonl."""

import json
import random
from pathlib import Path

import pytest
from conftest import single_thread

from transferlab.cli.predict import main

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

COLOURS = "red green blue black white pink gold grey".split()
WARM = {"red", "pink", "gold"}
NAMES = dict(zip(COLOURS, "one two three four five six seven eight".split()))
FILLER = "we saw a big old house near the small river and then walked home".split()


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _words(rng, colour: str, filler: int) -> list:
    words = rng.choices(FILLER, k=filler) + [colour]
    rng.shuffle(words)
    return words


def _rows(objective: str, n: int, seed: int) -> list:
    """Rows of an easy pattern around a colour, in the layout each objective reads."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        colour = rng.choice(COLOURS)
        words = _words(rng, colour, rng.randint(2, 9))
        if objective == "classification":  # the colour last: a row cut by data.max_seq_len loses it
            text = " ".join([w for w in words if w != colour] + [colour])
            rows.append({"text": text, "label": "warm" if colour in WARM else "cool"})
        elif objective == "token_classification":
            rows.append({"tokens": words, "tags": ["B-COL" if w in COLOURS else "O" for w in words]})
        elif objective == "extractive_qa":  # some contexts longer than a window: answers are searched over windows
            before, after = (" ".join(rng.choices(FILLER, k=rng.randint(0, 30))) for _ in range(2))
            context = f"{before} the door is painted {colour} {after}".strip()
            start = context.index(f"painted {colour}") + len("painted ")
            answers = {"text": [colour], "answer_start": [start]}
            rows.append({"question": "which colour is the door ?", "context": context, "answers": answers})
        else:
            rows.append({"source": " ".join(words), "target": NAMES[colour]})
    return rows


MODEL = {"seq2seq": "tiny_t5", "sft": "tiny_gpt2"}
SETTINGS = {  # short limits: long rows are cut (classification, tagging) or windowed (QA), predict does alike
    "classification": ["data.max_seq_len=8"],
    "token_classification": ["data.max_seq_len=8"],
    "extractive_qa": ["data.max_seq_len=32", "objective.doc_stride=8"],
    "seq2seq": ["objective.generation.max_new_tokens=6", "objective.source_prefix='name the colour: '"],
    # prompts uncut: evaluation cuts a long one to leave room for its reference, which predict has not got
    "sft": ["objective.generation.max_new_tokens=6", "data.max_seq_len=64"],
}


def _run(objective: str, tmp_path: Path, spy=None) -> tuple:
    """A short in-process run (fit, test) and its export: (run dir, test file, objective, the spy's records)."""
    from conftest import train_in_process

    train = _jsonl(tmp_path / "train.jsonl", _rows(objective, 160, 0))
    test = _jsonl(tmp_path / "test.jsonl", _rows(objective, 24, 1))
    overrides = [
        f"objective={objective}",
        f"model={MODEL.get(objective, 'tiny_bert')}",
        "data=files",
        f"data.train={train}",
        f"data.test={test}",
        "data.batch_size=16",
        "data.eval_batch_size=5",  # batches unlike predict's: the results must not depend on them
        "tokenizer.vocab_size=200",
        "tokenizer.min_frequency=1",
        "trainer.max_epochs=8",
        "optimizer.lr=3e-3",
        *SETTINGS.get(objective, []),
    ]
    run = tmp_path / "run"
    a, _, records = train_in_process(overrides, run, (lambda a: spy(a.module.objective)) if spy else None)
    return run, test, a.module.objective, records


def _predict(capsys, export: Path, test: str, *flags) -> list:
    capsys.readouterr()
    main([str(export), test, "--batch-size", "7", *flags])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _written(run: Path) -> list:
    return [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]


def _classified(objective) -> list:
    """(unpadded input ids, label id) of every row the test step scores: the argmax its metric update receives."""
    records, step, update = [], objective.step, objective.metrics["test"].update
    batches = []

    def spy_step(model, batch, stage):
        if stage == "test":
            batches.append(batch)
        return step(model, batch, stage)

    def spy_update(preds, target):
        ids, mask = batches[-1]["input_ids"], batches[-1]["attention_mask"]
        records.extend((tuple(i[m.bool()].tolist()), int(p)) for i, m, p in zip(ids, mask, preds))
        update(preds, target)

    objective.step, objective.metrics["test"].update = spy_step, spy_update
    return records


@pytest.mark.slow  # trains a run, then predicts
def test_classification_predicts_the_labels_its_test_step_scored(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    run, test, objective, scored = _run("classification", tmp_path, _classified)
    rows = _predict(capsys, run / "export", test, "--top-k", "2")
    assert len(scored) == len(rows) == 24
    by_ids = dict(scored)
    id2label = {i: label for label, i in objective.label2id.items()}
    read = [objective.tokenizer(r["text"], truncation=True, max_length=8)["input_ids"] for r in rows]
    assert any(len(objective.tokenizer(r["text"])["input_ids"]) > 8 for r in rows)  # cut by data.max_seq_len
    want = [id2label[by_ids[tuple(ids)]] for ids in read]
    assert [r["pred_label"] for r in rows] == want
    assert [r["pred_top_k"][0]["label"] for r in rows] == want


def _tag_records(objective) -> list:
    """The test stage's evaluation records (id, gold and predicted tags of its words)."""
    records, evaluate = [], objective.evaluate

    def spy(stage, predictions):
        if stage == "test":
            records.extend(predictions)
        return evaluate(stage, predictions)

    objective.evaluate = spy
    return records


@pytest.mark.slow  # trains a run, then predicts
def test_token_classification_predicts_the_tags_its_test_records_hold(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    run, test, _, records = _run("token_classification", tmp_path, _tag_records)
    rows = _predict(capsys, run / "export", test)
    records = sorted(records, key=lambda r: r["id"])
    assert [r["id"] for r in records] == list(range(24))
    assert any(len(r["predicted"]) < r["words"] for r in records)  # words cut off by data.max_seq_len: unscored
    for row, record in zip(rows, records):  # the scored words' tags, then null for each word cut off
        assert row["pred_tags"] == record["predicted"] + [None] * (record["words"] - len(record["predicted"]))


@pytest.mark.slow  # trains a run, then predicts
def test_extractive_qa_predicts_the_answers_of_its_test_predictions(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    run, test, objective, _ = _run("extractive_qa", tmp_path)
    assert objective.stats["test_windows"] > 24  # long contexts: several windows each
    rows, written = _predict(capsys, run / "export", test), _written(run)
    assert [r["pred_answer"] for r in rows] == [w["prediction"] for w in written]
    assert [r["pred_score"] for r in rows] == [pytest.approx(w["score"], abs=2e-4) for w in written]
    for r in rows:
        assert r["context"][r["pred_start"] : r["pred_start"] + len(r["pred_answer"])] == r["pred_answer"]

    # what it found them with: the export's record of the objective, its config and the data the run read
    record = json.loads((run / "export" / "transferlab.json").read_text())
    assert record == {
        "objective": "extractive_qa",
        "objective_config": {"label_smoothing": 0.0, "name": "extractive_qa", "max_seq_len": 32, "doc_stride": 8,
                             "max_answer_len": 30,
                             "n_best": 20, "allow_no_answer": False, "null_threshold": 0.0,
                             "tune_null_threshold": False},
        "data": {"question_column": "question", "text_column": "context", "label_column": "answers",
                 "max_seq_len": 32},
    }  # fmt: skip
    # an input column defaults to the one the run read (here renamed in the record)
    record["data"]["question_column"] = "query"
    (run / "export" / "transferlab.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit):
        main([str(run / "export"), test])
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(
            "no column 'query' for this extractive_qa export; columns found: question, context, answers; "
            "name it with --question-column=<one of them>"
        )
    )


@pytest.mark.slow  # trains a run, then predicts
@pytest.mark.parametrize("objective", ["seq2seq", "sft"])
def test_text_to_text_predicts_the_texts_of_its_test_predictions(objective, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    run, test, trained, _ = _run(objective, tmp_path)
    assert trained.stats["test_sources_truncated"] == 0
    rows, written = _predict(capsys, run / "export", test), _written(run)
    assert [r["source"] for r in rows] == [w["source"] for w in written]
    assert [r["pred_generation"] for r in rows] == [w["prediction"] for w in written]
    # --max-new-tokens overrides the run's objective.generation.max_new_tokens=6: greedy, a prefix of the same text
    short = _predict(capsys, run / "export", test, "--max-new-tokens", "1")
    assert all(w["prediction"].startswith(s["pred_generation"]) for s, w in zip(short, written))


def test_an_export_from_elsewhere_finds_its_objective_by_the_auto_class_that_builds_its_architecture(tmp_path):
    """No transferlab.json: the predicting objective whose auto_class builds config.architectures (transformers'
    MODEL_FOR_*_MAPPING_NAMES), with its default config; a causal LM is sft's (clm predicts nothing), a probe is the
    objective's that trains on frozen features."""
    from omegaconf import OmegaConf
    from transformers import BertConfig, GPT2Config, T5Config

    from transferlab.cli.predict import objective_of
    from transferlab.models.tokenizer import _train_wordpiece

    tokenizer = _train_wordpiece(iter([FILLER * 5]), vocab_size=60, min_frequency=1, lowercase=True)
    cases = [
        (BertConfig(), "BertForSequenceClassification", "classification"),
        (BertConfig(), "BertForTokenClassification", "token_classification"),
        (BertConfig(), "BertForQuestionAnswering", "extractive_qa"),
        (T5Config(), "T5ForConditionalGeneration", "seq2seq"),
        (GPT2Config(), "GPT2LMHeadModel", "sft"),
        (BertConfig(), "BertModel", "classification"),  # with a probe.json: a probe, exported before transferlab.json
    ]
    for config, architecture, name in cases:
        config.architectures = [architecture]
        config.save_pretrained(tmp_path / architecture)
        tokenizer.save_pretrained(tmp_path / architecture)
        if architecture == "BertModel":
            (tmp_path / architecture / "probe.json").write_text("{}")
        cls, cfg, data = objective_of(tmp_path / architecture)
        assert (cls.name, data) == (name, {}) and cfg == OmegaConf.structured(cls.Config), architecture
