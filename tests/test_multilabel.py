"""objective=multilabel_classification: the loss, threshold and metrics against sklearn on fixed logits; label cells
read exactly (list cells, text split at data.label_separator, an empty cell = no label); the threshold tuned on
validation only; the export in HF's pipeline; transferlab-predict's label sets; per_label.csv."""

import csv
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, precision_score, recall_score

from transferlab.cli.front import compose, preflight
from transferlab.errors import TransferlabError
from transferlab.objectives.multilabel_classification import MultilabelClassification
from transferlab.objectives.multilabel_labels import bit_columns, packed

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

LABELS = ["animal", "colour", "food", "place"]
LOGITS = torch.tensor(
    [
        [2.0, -1.0, 0.1, -3.0],
        [-0.5, 0.3, 1.5, -0.2],
        [-2.0, -2.0, -2.0, -2.0],
        [0.9, 0.8, -0.1, 0.05],
        [-0.3, 2.5, 0.0, 1.2],
        [1.1, -0.4, -0.9, 0.6],
    ]
)
GOLD = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]])


def _objective(threshold=0.5, tune=False, labels=LABELS):
    from datasets import Dataset

    cfg = OmegaConf.create({"name": "multilabel_classification", "threshold": threshold, "tune_threshold": tune})
    data_cfg = OmegaConf.create({"max_seq_len": 16, "num_proc": None, "label_separator": None})
    train = Dataset.from_dict({"text": ["x"] * len(labels), "label": [[label] for label in labels]})
    return MultilabelClassification(cfg, data_cfg, SimpleNamespace(pad_token_id=0), train)


def _batch(gold: np.ndarray, ids=None) -> dict:
    columns = bit_columns(gold.shape[1])
    words = [packed(np.flatnonzero(row).tolist(), columns) for row in gold]
    batch = {c: torch.tensor([w[c] for w in words]) for c in columns}
    n = len(gold)
    batch.update(input_ids=torch.ones(n, 3, dtype=torch.long), attention_mask=torch.ones(n, 3, dtype=torch.long))
    batch.update(n_rows=n, ids=list(range(n)) if ids is None else ids)
    return batch


def _model(logits):
    return lambda **inputs: SimpleNamespace(logits=logits)


def _sklearn(gold, predicted) -> dict:
    return {
        "f1_micro": f1_score(gold, predicted, average="micro", zero_division=0),
        "f1_macro": f1_score(gold, predicted, average="macro", zero_division=0),
        "precision_micro": precision_score(gold, predicted, average="micro", zero_division=0),
        "recall_micro": recall_score(gold, predicted, average="micro", zero_division=0),
        "exact_match": accuracy_score(gold, predicted),  # subset accuracy on indicator rows
    }


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.62])
def test_loss_threshold_and_metrics_match_sklearn_on_fixed_logits(threshold):
    objective = _objective(threshold)
    probs = torch.sigmoid(LOGITS).numpy()
    predicted = (probs > threshold).astype(int)
    want = _sklearn(GOLD, predicted)

    loss = objective.step(_model(LOGITS), _batch(GOLD), "train")
    bce = -(GOLD * np.log(probs) + (1 - GOLD) * np.log(1 - probs)).mean()
    assert float(loss) == pytest.approx(bce, rel=1e-6)
    train = {k: float(v) for k, v in objective.metrics["train"].compute().items()}
    assert train == pytest.approx(want, abs=1e-6)

    batch = _batch(GOLD)
    objective.step(_model(LOGITS), batch, "test")
    records = objective.predict(_model(LOGITS), batch)
    scored = objective.evaluate("test", records)
    assert scored.pop("threshold") == threshold
    assert scored == pytest.approx(want, abs=1e-6)


def test_per_label_table_matches_sklearn():
    objective = _objective(0.4)
    batch = _batch(GOLD)
    objective.step(_model(LOGITS), batch, "test")
    table = objective.artifacts("test", objective.predict(_model(LOGITS), batch))["per_label.csv"]
    rows = list(csv.reader(table.splitlines()))
    p, r, f, s = precision_recall_fscore_support(
        GOLD, (torch.sigmoid(LOGITS).numpy() > 0.4).astype(int), zero_division=0
    )
    assert rows[0] == ["label", "precision", "recall", "f1", "support"]
    assert rows[1:] == [[n, f"{a:.4f}", f"{b:.4f}", f"{c:.4f}", str(d)] for n, a, b, c, d in zip(LABELS, p, r, f, s)]
    assert objective.artifacts("val", []) == {}  # the test set's table only


@pytest.mark.parametrize("n", [45, 63, 64, 130])
def test_label_sets_round_trip_through_their_stored_bits(n):
    from transferlab.objectives.multilabel_labels import unpacked

    rng, columns = random.Random(n), bit_columns(n)
    sets = [sorted(rng.sample(range(n), rng.randint(0, 5))) for _ in range(50)] + [[0, n - 1], list(range(n))]
    words = [packed(s, columns) for s in sets]
    batch = {c: torch.tensor([w[c] for w in words]) for c in columns}
    assert [torch.nonzero(row).flatten().tolist() for row in unpacked(batch, columns, n)] == sets


def _planted(best: float, rows: int = 40, seed: int = 0) -> list:
    """Records whose gold labels are exactly the scores above `best`: micro-F1 is 1 there and lower elsewhere."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.01, 0.99, size=(rows, len(LABELS))).round(3)
    scores[np.abs(scores - best) < 0.03] = best + 0.1
    return [{"id": i, "scores": s.tolist(), "gold": np.flatnonzero(s > best).tolist()} for i, s in enumerate(scores)]


def test_tune_threshold_picks_on_validation_and_never_on_test():
    objective = _objective(0.5, tune=True)
    val = objective.evaluate("val", _planted(0.3))
    assert val["threshold"] == 0.3 and val["f1_micro"] == 1.0
    test_records = _planted(0.8, seed=1)  # a test split that would pick another threshold
    test = objective.evaluate("test", test_records)
    assert test["threshold"] == 0.3 and objective.threshold == 0.3
    assert test["f1_micro"] < 1.0
    assert objective.export_config()["threshold"] == 0.3
    fixed = _objective(0.5, tune=False)
    assert fixed.evaluate("val", _planted(0.3))["threshold"] == 0.5  # tune_threshold=false: as configured


def _files(tmp_path: Path, train, *extra) -> list:
    return ["objective=multilabel_classification", "data=files", f"data.train={train}", *extra]


def _loaded(overrides: list):
    from transferlab.data.loading import load_splits

    preflight(overrides)
    cfg = compose(overrides)
    return cfg, load_splits(cfg.data, MultilabelClassification)[0]


def test_separator_split_csv_labels_are_read_exactly_and_an_empty_cell_means_none(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    rows = ["one,a;b", "two, c;a", "three,", "four,b ", 'five,"a;NA;b"', "six,   "]
    (tmp_path / "train.csv").write_text("\n".join(["text,label", *rows * 4]) + "\n")
    cfg, splits = _loaded(_files(tmp_path, tmp_path / "train.csv", 'data.label_separator=";"', "data.split_seed=3"))
    read = {t: cell for s in splits.values() for t, cell in zip(s["text"][:], s["label"][:])}
    assert read == {"one": ["a", "b"], "two": [" c", "a"], "three": [], "four": ["b "], "five": ["a", "NA", "b"],
                    "six": []}  # fmt: skip
    objective = MultilabelClassification(cfg.objective, cfg.data, SimpleNamespace(pad_token_id=0), splits["train"])
    assert set(objective.label2id) <= {" c", "NA", "a", "b", "b "}
    assert list(objective.label2id) == sorted(objective.label2id)


def test_empty_list_cells_are_rows_with_no_label_and_train_with_zero_targets(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    lines = [{"text": "a cat", "labels": ["animal"]}, {"text": "nothing", "labels": []}, {"text": "x", "labels": None}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines * 10))
    cfg, splits = _loaded(_files(tmp_path, path, "data.label_column=labels", "tokenizer.vocab_size=100"))
    assert sum(len(s) for s in splits.values()) == 30  # nothing dropped as missing
    from transferlab.models.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(cfg, splits["train"], tmp_path / "run", True, MultilabelClassification)
    objective = MultilabelClassification(cfg.objective, cfg.data, tokenizer, splits["train"])
    rows = objective.prepare("train", splits["train"])
    by_text = {tokenizer.decode(rows[i]["input_ids"], skip_special_tokens=True): rows[i]["labels_0"]
               for i in range(len(rows))}  # fmt: skip
    assert by_text == {"a cat": 1, "nothing": 0, "x": 0}


def test_a_label_unseen_in_train_fails_in_one_line_naming_it_and_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": ["x"]}\n{"text": "b", "label": ["y"]}\n' * 5)
    (tmp_path / "test.jsonl").write_text('{"text": "c", "label": ["x", "boat"]}\n')
    overrides = _files(tmp_path, tmp_path / "train.jsonl", f"data.test={tmp_path / 'test.jsonl'}")
    cfg, splits = _loaded(overrides)
    with pytest.raises(TransferlabError) as e:
        MultilabelClassification.check_splits(splits, cfg)
    assert str(e.value).startswith(f"data.test ({tmp_path / 'test.jsonl'}) has labels never seen in train: boat; ")


def test_label_separator_for_an_objective_that_does_not_read_it_is_refused():
    from transferlab.config.validate import validate

    with pytest.raises(TransferlabError) as e:
        validate(compose(['data.label_separator=";"']))
    assert str(e.value) == (
        "data.label_separator=; is read by objective=multilabel_classification only, not objective=classification; "
        "use objective=multilabel_classification, or drop data.label_separator"
    )


# --- a short run: export, HF pipeline, transferlab-predict ------------------------------------------------------

COLOURS = {"red": "warm", "gold": "warm", "blue": "cool", "grey": "cool"}
FILLER = "we saw a big old house near the small river and then walked home".split()


def _rows(n: int, seed: int) -> list:
    """Texts with some colour words (none included); labels: the kinds of colour they hold, plus `many` for 2+."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        colours = rng.sample(sorted(COLOURS), rng.choice([0, 1, 1, 2]))
        words = rng.choices(FILLER, k=rng.randint(2, 6)) + colours
        rng.shuffle(words)
        labels = sorted({COLOURS[c] for c in colours} | ({"many"} if len(colours) > 1 else set()))
        out.append({"text": " ".join(words), "labels": labels})
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short in-process run with tune_threshold=true (fit, test, export): (run dir, test file, metrics)."""
    from rich.console import Console

    from transferlab.run.job import _fit_and_evaluate, assemble
    from transferlab.run.outputs import export

    d = tmp_path_factory.mktemp("multilabel")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRANSFERLAB_CACHE", str(d / "cache"))
    files = {}
    for split, n, seed in (("train", 240, 0), ("validation", 40, 1), ("test", 40, 2)):
        files[split] = d / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in _rows(n, seed)))
    overrides = [
        "objective=multilabel_classification",
        "objective.tune_threshold=true",
        "model=tiny_bert",
        "data=files",
        *(f"data.{split}={path}" for split, path in files.items()),
        "data.label_column=labels",
        "data.batch_size=16",
        "data.eval_batch_size=7",
        "tokenizer.vocab_size=200",
        "tokenizer.min_frequency=1",
        "trainer.max_epochs=6",
        "optimizer.lr=3e-3",
        "logger=none",
        "callbacks.progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    preflight(overrides)
    cfg = compose(overrides)
    a = assemble(cfg, d / "run", [], True, Console(stderr=True, quiet=True))
    metrics = {k: float(v) for k, v in _fit_and_evaluate(cfg, a, None).items()}
    export(a.policy.model_for_export(a.module.model)[0], a.tokenizer, d / "run" / "export", a.module.objective)
    yield d / "run", files["test"], metrics
    mp.undo()


def _predict(capsys, export: Path, path: Path) -> list:
    from transferlab.cli.predict import main

    capsys.readouterr()
    main([str(export), str(path), "--batch-size", "5"])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.slow
def test_the_export_is_a_multi_label_model_whose_pipeline_scores_are_predicts(run, capsys):
    from transformers import pipeline

    run_dir, test, metrics = run
    export = run_dir / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert sorted(config["id2label"].values()) == ["cool", "many", "warm"]
    texts = [json.loads(line)["text"] for line in test.read_text().splitlines()]
    piped = pipeline("text-classification", model=str(export), top_k=None, device="cpu")(texts)
    predicted = _predict(capsys, export, test)
    for scores, row in zip(piped, predicted):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(row["pred_scores"], abs=1e-5)
    # the threshold tuned on validation (val/threshold of the winning checkpoint) is the export's, and predict's
    record = json.loads((export / "transferlab.json").read_text())
    threshold = record["objective_config"]["threshold"]
    assert threshold == pytest.approx(metrics["test/threshold"]) and record["objective_config"]["tune_threshold"]
    for row in predicted:
        assert row["pred_labels"] == [label for label, s in row["pred_scores"].items() if s > threshold]
    assert metrics["test/f1_micro"] > 0.8  # an easy task, learned


@pytest.mark.slow
def test_predict_applies_the_exports_threshold_and_per_label_csv_is_the_test_sets(run, capsys, tmp_path):
    import shutil

    run_dir, test, metrics = run
    export = tmp_path / "export"
    shutil.copytree(run_dir / "export", export)
    record = json.loads((export / "transferlab.json").read_text())
    rows = _predict(capsys, export, test)
    gold = [json.loads(line)["labels"] for line in test.read_text().splitlines()]
    names = sorted(rows[0]["pred_scores"])
    indicator = lambda sets: np.array([[n in s for n in names] for s in sets]).astype(int)  # noqa: E731
    p, r, f, s = precision_recall_fscore_support(indicator(gold), indicator([x["pred_labels"] for x in rows]),
                                                 zero_division=0)  # fmt: skip
    table = list(csv.reader((run_dir / "per_label.csv").read_text().splitlines()))
    assert table[1:] == [[n, f"{a:.4f}", f"{b:.4f}", f"{c:.4f}", str(d)] for n, a, b, c, d in zip(names, p, r, f, s)]
    assert f1_score(indicator(gold), indicator([x["pred_labels"] for x in rows]), average="micro") == pytest.approx(
        metrics["test/f1_micro"], abs=1e-6
    )
    record["objective_config"]["threshold"] = 0.001  # predict reads the export's threshold: nearly every label
    (export / "transferlab.json").write_text(json.dumps(record))
    assert all(row["pred_labels"] == names for row in _predict(capsys, export, test))
    (export / "transferlab.json").unlink()  # an export from elsewhere: its config's problem_type names the objective
    foreign = _predict(capsys, export, test)
    assert [r["pred_scores"] for r in foreign] == [r["pred_scores"] for r in rows]
    assert [r["pred_labels"] for r in foreign] == [[n for n, s in r["pred_scores"].items() if s > 0.5] for r in rows]
