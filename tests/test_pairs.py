"""Sentence pairs (data.text_pair_column) and the classification metrics a GLUE user reads: MCC, per_class.csv and
the confusion matrix.

A pair is encoded as the tokenizer joins one ([CLS] a [SEP] b [SEP] with segment ids 0/1 for WordPiece), cut
longest-first; the prepared-data key, the trained tokenizer and transferlab-predict all read the second text; the
export answers transformers' text-classification pipeline given {"text": a, "text_pair": b} as predict does."""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf

from transferlab.config.schema import DataConfig
from transferlab.errors import TransferlabError
from transferlab.models.tokenizer import FAMILIES
from transferlab.objectives.classification import Classification, ClassificationConfig
from transferlab.objectives.sequence_inputs import encode_inputs

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

TEXTS = ["the cat sleeps on a mat", "a small dog runs fast", "the red car drives home"] * 40


def _tokenizer(family: str = "wordpiece", texts=TEXTS, vocab_size: int = 150):
    return FAMILIES[family](iter([texts]), vocab_size, 1, False)


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ---------------------------------------------------------------- encoding


def test_wordpiece_joins_a_pair_with_segment_ids():
    tokenizer = _tokenizer()
    encoded = encode_inputs(tokenizer, {"text": ["the cat"], "text_pair": ["a small dog"]}, 32)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert tokens == ["[CLS]", "the", "cat", "[SEP]", "a", "small", "dog", "[SEP]"]
    assert encoded["token_type_ids"] == [[0, 0, 0, 0, 1, 1, 1, 1]]
    single = encode_inputs(tokenizer, {"text": ["the cat"]}, 32)
    assert list(single) == ["input_ids"]  # a single text: no segment ids (all 0 is the model's default)


def test_a_long_pair_is_cut_longest_first():
    tokenizer = _tokenizer()
    encoded = encode_inputs(tokenizer, {"text": ["the cat sleeps on a mat"], "text_pair": ["a dog"]}, 8)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    # 8 = [CLS] + 3 + [SEP] + 2 + [SEP]: the longer first text lost its tail, the short second kept whole
    assert tokens == ["[CLS]", "the", "cat", "sleeps", "[SEP]", "a", "dog", "[SEP]"]


@pytest.mark.parametrize("family,eos", [("byte_bpe", "<|endoftext|>"), ("unigram", "</s>")])
def test_bpe_and_unigram_join_a_pair_with_their_end_token_and_no_segment_ids(family, eos):
    tokenizer = _tokenizer(family, vocab_size=300 if family == "byte_bpe" else 250)
    encoded = encode_inputs(tokenizer, {"text": ["the cat"], "text_pair": ["a dog"]}, 32)
    assert list(encoded) == ["input_ids"]  # like GPT-2's and T5's own tokenizers
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert tokens.count(eos) == 2 and tokens[-1] == eos
    first = tokenizer("the cat")["input_ids"]
    assert encoded["input_ids"][0][: len(first)] == first  # a, its end token, then b and its end token


def test_a_trained_tokenizer_learns_from_both_texts_of_a_pair():
    from datasets import Dataset

    pairs = Dataset.from_dict({"text": ["the cat"] * 50, "text_pair": ["zebras gallop"] * 50, "label": ["a"] * 50})
    tokenizer = _tokenizer(texts=list(Classification.texts(pairs))[0], vocab_size=60)
    assert "zebras" in tokenizer.get_vocab() and "gallop" in tokenizer.get_vocab()


# ---------------------------------------------------------------- data: the key, missing values, columns


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("pairs")
    rng = random.Random(0)
    rows = [
        {"a": " ".join(rng.choices(TEXTS, k=1)), "b": rng.choice(["a dog", "the cat sleeps"]), "c": "red car", "y": y}
        for y in ["same", "different"] * 10
    ]
    gap = [*rows[:2], {**rows[2], "b": ""}, *rows[3:]]
    return {
        "train": _jsonl(d / "train.jsonl", rows),
        "gap": _jsonl(d / "gap.jsonl", [{**r, "b": r["b"] or None} for r in gap]),
    }


def _data(train: str, **keys):
    return OmegaConf.merge(
        OmegaConf.structured(DataConfig),
        {"train": train, "validation": train, "test": train, "text_column": "a", "label_column": "y", **keys},
    )


def _prepared(data_cfg, tokenizer):
    from transferlab.data.loading import load_splits

    splits, dropped = load_splits(data_cfg, Classification)
    objective = Classification(OmegaConf.structured(ClassificationConfig), data_cfg, tokenizer, splits["train"])
    return objective, objective.prepare("train", splits["train"]), splits


def test_the_prepared_data_key_and_lengths_follow_the_pair_column(pair_files):
    tokenizer = _tokenizer()
    _, single, _ = _prepared(_data(pair_files["train"]), tokenizer)
    _, with_b, _ = _prepared(_data(pair_files["train"], text_pair_column="b"), tokenizer)
    _, with_c, splits = _prepared(_data(pair_files["train"], text_pair_column="c"), tokenizer)
    assert len({single.fingerprint, with_b.fingerprint, with_c.fingerprint}) == 3
    assert splits["train"].column_names == ["text", "text_pair", "label"]
    row = splits["train"][0]
    want = tokenizer(row["text"], row["text_pair"])
    assert with_c[0]["input_ids"].tolist() == want["input_ids"]
    assert with_c[0]["token_type_ids"].tolist() == want["token_type_ids"]
    assert (
        with_c.lengths == single.lengths + len(tokenizer("red car", add_special_tokens=False)["input_ids"]) + 1
    ).all()
    _, again, _ = _prepared(_data(pair_files["train"], text_pair_column="c"), tokenizer)
    assert again.fingerprint == with_c.fingerprint  # the same pair: the cache answers


def test_a_pair_batch_feeds_the_model_its_segment_ids(pair_files):
    from transferlab.objectives.base import model_inputs

    tokenizer = _tokenizer()
    objective, rows, _ = _prepared(_data(pair_files["train"], text_pair_column="b"), tokenizer)
    batch = objective.collator("train")([rows[i] for i in range(4)])
    inputs = model_inputs(batch)
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    for i in range(4):
        n = int(batch["attention_mask"][i].sum())
        assert batch["token_type_ids"][i, :n].tolist() == rows[i]["token_type_ids"].tolist()
        assert batch["token_type_ids"][i, n:].eq(0).all()


def test_an_empty_second_text_follows_data_missing(pair_files):
    from transferlab.data.loading import load_splits

    with pytest.raises(TransferlabError, match=r"gap.jsonl\) has empty values: 'b' at line 3; fill them in"):
        load_splits(_data(pair_files["gap"], text_pair_column="b"), Classification)
    splits, dropped = load_splits(_data(pair_files["gap"], text_pair_column="b", missing="drop"), Classification)
    assert dropped == {"train": 1, "validation": 1, "test": 1} and len(splits["train"]) == 19


def test_a_pair_column_that_does_not_exist_names_the_columns_that_do(pair_files):
    from transferlab.data.loading import load_splits

    with pytest.raises(TransferlabError) as e:
        load_splits(_data(pair_files["train"], text_pair_column="second"), Classification)
    assert "has no column 'second'; columns found: 'a', 'b', 'c', 'y'; set data.text_pair_column=" in str(e.value)


def test_an_objective_that_reads_no_pairs_refuses_the_pair_column(pair_files):
    from transferlab.cli.front import compose
    from transferlab.config.validate import validate

    train = pair_files["train"]
    cfg = compose(["objective=token_classification", "data=files", f"data.train={train}", "data.text_pair_column=b"])
    with pytest.raises(TransferlabError, match="data.text_pair_column=b is not read by objective=token_classification"):
        validate(cfg)


def test_a_mix_refuses_pairs_in_its_sources(pair_files):
    from transferlab.cli.front import compose
    from transferlab.config.validate import validate

    train = pair_files["train"]
    source = f"{{source: files, train: {train}, text_column: a, label_column: y, text_pair_column: b}}"
    cfg = compose(["data=mix", f"data.sources=[{source}]"])
    with pytest.raises(TransferlabError, match="data.sources.0.text_pair_column: data=mix reads single texts"):
        validate(cfg)


# ---------------------------------------------------------------- metrics on fixed predictions


def test_mcc_and_per_class_csv_match_sklearn_on_fixed_predictions(pair_files):
    from datasets import Dataset
    from sklearn.metrics import matthews_corrcoef, precision_recall_fscore_support

    train = Dataset.from_dict({"text": ["x"] * 4, "label": ["ant", "bee", "cat", "dog"]})
    objective = Classification(OmegaConf.structured(ClassificationConfig), _data("x"), _tokenizer(), train)
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 200)
    preds = np.where(rng.random(200) < 0.6, target, rng.integers(0, 3, 200))  # dog (3) is never predicted
    for start in range(0, 200, 32):  # per batch, as the test step updates them
        objective.metrics["test"].update(
            torch.tensor(preds[start : start + 32]), torch.tensor(target[start : start + 32])
        )
    assert objective.metrics["test"].compute()["mcc"].item() == pytest.approx(
        matthews_corrcoef(target, preds), abs=1e-6
    )

    files = objective.artifacts("test", [])
    rows = list(csv.DictReader(files["per_class.csv"].decode().splitlines()))
    p, r, f, s = precision_recall_fscore_support(target, preds, labels=[0, 1, 2, 3], zero_division=0)
    assert [row["label"] for row in rows] == ["ant", "bee", "cat", "dog"]
    assert {row["split"] for row in rows} == {"test"}
    for i, row in enumerate(rows):
        assert float(row["precision"]) == pytest.approx(p[i], abs=1e-6)
        assert float(row["recall"]) == pytest.approx(r[i], abs=1e-6)
        assert float(row["f1"]) == pytest.approx(f[i], abs=1e-6)
        assert int(row["support"]) == s[i]
    assert files["confusion_matrix.png"].startswith(b"\x89PNG")
    assert objective.artifacts("train", []) == {}


# ---------------------------------------------------------------- a run on pairs: predict, pipeline, files, report

WARM, COOL = ["red", "pink", "gold"], ["blue", "grey", "green"]
FILLER = "we saw a big old house near the small river and then walked home".split()


def _pair_rows(n: int, seed: int) -> list:
    """The label is the second text's colour (warm or cool), the first text holds a distracting one: a model that
    reads only the first text is at chance."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = (rng.choices(FILLER, k=rng.randint(2, 6)) + [rng.choice(WARM + COOL)] for _ in range(2))
        rows.append({"first": " ".join(a), "second": " ".join(b), "label": "warm" if b[-1] in WARM else "cool"})
    return rows


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A short in-process run on pairs (fit, test, export): (run dir, test file, test rows, its metrics)."""
    from conftest import train_in_process

    d = tmp_path_factory.mktemp("pair_run")
    test_rows = _pair_rows(40, 1)
    overrides = [
        "objective=classification",
        "model=tiny_bert",
        "data=files",
        f"data.train={_jsonl(d / 'train.jsonl', _pair_rows(240, 0))}",
        f"data.test={_jsonl(d / 'test.jsonl', test_rows)}",
        "data.text_column=first",
        "data.text_pair_column=second",
        "data.batch_size=16",
        "data.eval_batch_size=7",
        "tokenizer=train",
        "tokenizer.vocab_size=200",
        "tokenizer.min_frequency=1",
        "trainer.max_epochs=6",
        "optimizer.lr=3e-3",
    ]
    run = d / "run"
    _, metrics, _ = train_in_process(overrides, run)
    return run, str(d / "test.jsonl"), test_rows, {k: float(v) for k, v in metrics.items()}


@pytest.fixture(scope="module")
def predicted(pair_run) -> list:
    from transferlab.cli.predict import main

    run, test, _, _ = pair_run
    out = run.parent / "predicted.jsonl"
    main([str(run / "export"), test, "--batch-size", "5", "--out", str(out)])
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
def test_predict_reads_the_pair_and_scores_what_the_test_step_scored(pair_run, predicted):
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    _, _, rows, metrics = pair_run
    truth, preds = [r["label"] for r in rows], [p["pred_label"] for p in predicted]
    assert [p["second"] for p in predicted] == [r["second"] for r in rows]  # each row as read, then its prediction
    assert metrics["test/acc"] >= 0.8  # learnt from the second text: the first alone is at chance
    assert metrics["test/acc"] == pytest.approx(accuracy_score(truth, preds), abs=1e-6)
    assert metrics["test/mcc"] == pytest.approx(matthews_corrcoef(truth, preds), abs=1e-5)


@pytest.mark.slow
def test_the_export_answers_the_text_classification_pipeline_given_a_pair_as_predict_does(pair_run, predicted):
    from transformers import pipeline

    run, _, rows, _ = pair_run
    classify = pipeline("text-classification", model=str(run / "export"), device="cpu")
    for row, mine in zip(rows, predicted):
        theirs = classify({"text": row["first"], "text_pair": row["second"]})
        theirs = theirs[0] if isinstance(theirs, list) else theirs
        assert theirs["label"] == mine["pred_label"]
        assert theirs["score"] == pytest.approx(mine["pred_score"], abs=1e-4)


@pytest.mark.slow
def test_the_run_keeps_per_class_csv_and_the_confusion_matrix_of_its_test_split(pair_run, predicted):
    from sklearn.metrics import precision_recall_fscore_support

    run, _, rows, _ = pair_run
    table = list(csv.DictReader((run / "per_class.csv").read_text().splitlines()))
    truth, preds = [r["label"] for r in rows], [p["pred_label"] for p in predicted]
    p, r, f, s = precision_recall_fscore_support(truth, preds, labels=["cool", "warm"], zero_division=0)
    assert [(t["split"], t["label"], int(t["support"])) for t in table] == [
        ("test", "cool", s[0]),
        ("test", "warm", s[1]),
    ]
    for i, t in enumerate(table):
        assert (float(t["precision"]), float(t["recall"]), float(t["f1"])) == pytest.approx(
            (p[i], r[i], f[i]), abs=1e-6
        )
    assert (run / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


def test_report_draws_the_run_dirs_figures_beside_its_curves(tmp_path):
    import matplotlib.image

    from transferlab.objectives.class_report import confusion_png
    from transferlab.report.study import main

    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("task_name: pairs\n")
    lines = ["step,train/loss,val/loss,val/acc"] + [f"{s},{1 / s},{1.2 / s},{0.5 + s / 100}" for s in (1, 2, 3)]
    (run / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    assert main([str(run)]) == 0
    plain = matplotlib.image.imread(run / "curves.png").shape
    (run / "confusion_matrix.png").write_bytes(confusion_png(np.array([[5, 1], [2, 7]]), ["a", "b"], "test"))
    assert main([str(run)]) == 0
    beside = matplotlib.image.imread(run / "curves.png").shape
    assert beside[1] > plain[1] + 400  # one panel wider


@pytest.mark.parametrize("name", ["regression", "multilabel_classification"])
def test_every_sequence_objective_encodes_and_batches_a_pair(pair_files, tmp_path, name):
    """Regression and multi-label read their text through classification's path: a pair reaches their batches."""
    from transferlab.data.loading import load_splits
    from transferlab.objectives import OBJECTIVES
    from transferlab.objectives.base import model_inputs

    rows = [{"a": "a cat", "b": f"the {w} sleeps", "y": y} for w, y in [("dog", "1.5"), ("cat", "2.0")] * 6]
    data_cfg = _data(_jsonl(tmp_path / "t.jsonl", rows), text_pair_column="b")
    if name == "multilabel_classification":
        data_cfg.label_separator = ";"
    cls = OBJECTIVES[name]
    tokenizer = _tokenizer()
    splits, _ = load_splits(data_cfg, cls)
    objective = cls(OmegaConf.structured(cls.Config), data_cfg, tokenizer, splits["train"])
    prepared = objective.prepare("train", splits["train"])
    want = tokenizer("a cat", "the dog sleeps")
    assert prepared[0]["input_ids"].tolist() == want["input_ids"]
    batch = objective.collator("train")([prepared[i] for i in range(2)])
    assert model_inputs(batch)["token_type_ids"][0].tolist()[: len(want["input_ids"])] == want["token_type_ids"]
