"""objective=regression: targets read as written, metrics on the target's scale (checked against scipy and sklearn),
and the standardisation a run trains with undone everywhere a value comes out: the run's predictions, the export's
transferlab-predict and its transformers pipeline."""

import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf

from transferlab.cli.front import compose, preflight
from transferlab.errors import TransferlabError
from transferlab.objectives import OBJECTIVES

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)
Regression = OBJECTIVES["regression"]
SRC = Path(__file__).resolve().parents[1] / "src"


def _objective(targets: list, standardize: bool = True):
    from datasets import Dataset

    train = Dataset.from_dict({"text": ["a"] * len(targets), "label": targets})
    return Regression(OmegaConf.create({"name": "regression", "standardize": standardize}), None, None, train)


class _Outputs:
    """A stand-in model that outputs given (standardised) values."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, **inputs):
        return self


def test_metrics_on_the_original_scale_match_scipy_and_sklearn():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error

    objective = _objective(["10", "20", "30", "40.5"])
    assert objective.mean == 25.125 and objective.std == pytest.approx(statistics.pstdev([10, 20, 30, 40.5]))
    predicted = [12.0, 18.5, 33.0, 33.0, 41.0, 7.25]  # a tie, for Spearman's average ranks
    target = [10.0, 20.0, 30.0, 45.0, 40.5, 9.0]
    standardised = (torch.tensor(predicted) - objective.mean) / objective.std
    for rows in (slice(0, 4), slice(4, 6)):  # two batches: whole-set values, not a mean of batch values
        batch = {"input_ids": torch.zeros(1), "labels": torch.tensor(target[rows]), "ids": [0]}
        loss = objective.step(_Outputs(standardised[rows, None]), batch, "test")
        want = ((standardised[rows] - (torch.tensor(target[rows]) - objective.mean) / objective.std) ** 2).mean()
        assert float(loss) == pytest.approx(float(want), rel=1e-5)  # MSE on the standardised scale
    got = {k: float(v) for k, v in objective.metrics["test"].compute().items()}
    mse = mean_squared_error(target, predicted)
    assert got["mse"] == pytest.approx(mse, rel=1e-5)
    assert got["rmse"] == pytest.approx(mse**0.5, rel=1e-5)
    assert got["pearson"] == pytest.approx(pearsonr(predicted, target)[0], rel=1e-5)
    assert got["spearman"] == pytest.approx(spearmanr(predicted, target)[0], rel=1e-5)


def test_standardize_false_trains_on_the_targets_as_they_are():
    objective = _objective([1.0, 1.0], standardize=False)  # no spread is fine when nothing is divided by it
    assert objective.model_config()["target_mean"] == 0.0 and objective.model_config()["target_std"] == 1.0
    assert _objective([1.0, 3.0]).model_config() == {
        "num_labels": 1,
        "problem_type": "regression",
        "id2label": {0: "value"},
        "label2id": {"value": 0},
        "target_mean": 2.0,
        "target_std": 1.0,
    }


def _load(tmp_path, monkeypatch, lines: list, *overrides):
    """The train split of a CSV as objective=regression reads and checks it."""
    from transferlab.data.loading import load_splits

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "train.csv").write_text("\n".join(["text,score", *lines]) + "\n")
    args = ["objective=regression", "data=files", f"data.train={tmp_path / 'train.csv'}", "data.label_column=score"]
    preflight([*args, *overrides])
    cfg = compose([*args, *overrides])
    splits, dropped = load_splits(cfg.data, Regression)
    Regression.check_splits(splits, cfg)
    return splits, dropped


def test_targets_are_numbers_as_written(tmp_path, monkeypatch):
    rows = [f"text {i},{value}" for i, value in enumerate(["1.5", " 2", "3e1", "-0.25", "007"] * 8)]
    splits, _ = _load(tmp_path, monkeypatch, rows)
    objective = Regression(OmegaConf.create({"name": "regression", "standardize": True}), None, None, splits["train"])
    assert set(splits["train"]["label"][:]) == {"1.5", " 2", "3e1", "-0.25", "007"}  # cells as written
    stored = objective.stored_labels()[0]
    assert stored(["1.5", " 2", "3e1", "-0.25", "007"]) == {"labels": [1.5, 2.0, 30.0, -0.25, 7.0]}
    assert stored([3, 2.5]) == {"labels": [3.0, 2.5]}  # JSON numbers


@pytest.mark.parametrize("cell", ["abc", "NA", "nan", "inf", "1,5"])
def test_a_target_that_is_no_number_is_named_by_file_and_line(tmp_path, monkeypatch, cell):
    written = f'"{cell}"' if "," in cell else cell
    rows = [f"text {i},{i % 3}" for i in range(6)] + [f"odd one,{written}"]
    with pytest.raises(TransferlabError) as e:
        _load(tmp_path, monkeypatch, rows)
    assert str(e.value) == (
        f"data.train ({tmp_path / 'train.csv'}) line 8: target '{cell}' is not a number; objective=regression reads "
        "one number per "
        "row (e.g. 3.5): fix the cell, or leave it empty (see data.missing)"
    )


def test_an_empty_target_follows_data_missing(tmp_path, monkeypatch):
    rows = [f"text {i},{i % 3}" for i in range(6)] + ["no score,"]
    with pytest.raises(TransferlabError, match=r"has empty values: 'score' at line 8; fill them in, or set data\.mis"):
        _load(tmp_path, monkeypatch, rows)
    splits, dropped = _load(tmp_path, monkeypatch, rows, "data.missing=drop")
    assert dropped == {"train": 1} and "" not in splits["train"]["label"][:]


def test_targets_without_spread_cannot_be_standardised(tmp_path, monkeypatch):
    with pytest.raises(TransferlabError) as e:
        _load(tmp_path, monkeypatch, [f"text {i},2.5" for i in range(30)])
    assert str(e.value) == (
        "objective=regression: every train target is 2.5, so they cannot be standardised (std 0); "
        "give train varied targets, or set objective.standardize=false"
    )
    _load(tmp_path, monkeypatch, [f"text {i},2.5" for i in range(30)], "objective.standardize=false")


# --- one real run through the CLI, shared: export, predictions, predict, pipeline --------------------------------

FILLER = "the a of old new small river house near then".split()


def _rows(n: int, seed: int) -> list:
    """A score of 50 + 7 per "up" in the text: a scale far from the standardised one."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ups = rng.randint(0, 4)
        words = rng.choices(FILLER, k=rng.randint(2, 6)) + ["up"] * ups
        rng.shuffle(words)
        rows.append((" ".join(words), f"{50 + 7 * ups}.0"))
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("regression_run")
    for name, n, seed in (("train", 200, 0), ("validation", 30, 2), ("test", 30, 1)):
        (d / f"{name}.csv").write_text("text,score\n" + "".join(f"{t},{s}\n" for t, s in _rows(n, seed)))
    env = {**os.environ, "PYTHONPATH": str(SRC), "TRANSFERLAB_CACHE": str(d / "cache"), "OMP_NUM_THREADS": "1"}
    args = [
        "objective=regression",
        "model=tiny_bert",
        "data=files",
        f"data.train={d / 'train.csv'}",
        f"data.validation={d / 'validation.csv'}",
        f"data.test={d / 'test.csv'}",
        "data.label_column=score",
        "data.batch_size=16",
        "data.eval_batch_size=7",  # batches unlike predict's
        "tokenizer.vocab_size=100",
        "tokenizer.min_frequency=1",
        "trainer.max_epochs=3",
        "logger=none",
        "callbacks.progress_bar=false",
        f"hydra.run.dir={d / 'run'}",
    ]
    out = subprocess.run([sys.executable, "-m", "transferlab.train", *args], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    predicted = subprocess.run(
        [sys.executable, "-m", "transferlab.cli.predict", str(d / "run" / "export"), str(d / "test.csv")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    return {"dir": d / "run", "test": d / "test.csv", "predicted": rows}


def _written(run_dir: Path) -> list:
    return [json.loads(line) for line in (run_dir / "predictions" / "test.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_predict_gives_the_runs_own_values_on_the_original_scale(run):
    config = json.loads((run["dir"] / "export" / "config.json").read_text())
    targets = [float(s) for _, s in _rows(200, 0)]  # the whole train file: validation is a file of its own
    mean = sum(targets) / len(targets)
    std = (sum((t - mean) ** 2 for t in targets) / len(targets)) ** 0.5
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "value"}
    assert config["target_mean"] == pytest.approx(mean) and config["target_std"] == pytest.approx(std)
    written, predicted = _written(run["dir"]), run["predicted"]
    assert [w["example"] for w in written] == list(range(30))
    assert [w["label"] for w in written] == [float(s) for _, s in _rows(30, 1)]  # the targets as written
    assert [p["pred_value"] for p in predicted] == [pytest.approx(w["pred_value"], abs=1e-4) for w in written]
    assert all(p["pred_value"] > 20 for p in predicted)  # the target's scale, not the standardised one (~0)
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    mse = sum((w["pred_value"] - w["label"]) ** 2 for w in written) / len(written)
    assert metrics["test/mse"] == pytest.approx(mse, rel=1e-4)  # the metric is on the original scale too
    assert metrics["test/rmse"] == pytest.approx(mse**0.5, rel=1e-4)
    assert {"test/pearson", "test/spearman", "val/pearson", "val/rmse"} <= set(metrics)


@pytest.mark.slow
def test_the_export_loads_in_a_text_classification_pipeline(run):
    from transformers import pipeline

    export = run["dir"] / "export"
    texts = [t for t, _ in _rows(30, 1)]
    pipe = pipeline("text-classification", model=str(export), function_to_apply="none")
    config = pipe.model.config
    scores = [r["score"] for r in pipe(texts)]
    assert [r["label"] for r in pipe(texts[:2])] == ["value", "value"]
    # the pipeline gives the standardised value; the card's line maps it back to predict's
    values = [s * config.target_std + config.target_mean for s in scores]
    assert values == [pytest.approx(p["pred_value"], abs=1e-4) for p in run["predicted"]]
    default = pipeline("text-classification", model=str(export))  # problem_type=regression: no sigmoid either
    assert [r["score"] for r in default(texts[:3])] == [pytest.approx(s, abs=1e-6) for s in scores[:3]]
    card = (export / "README.md").read_text()
    assert 'value = pipe("some text")[0]["score"] * model.config.target_std + model.config.target_mean' in card


@pytest.mark.slow  # the module's trained run
def test_an_export_from_elsewhere_saying_regression_is_predicted_as_regression(run, tmp_path):
    """Without transferlab.json, predict finds the objective from the HF config: problem_type picks regression over
    classification, which shares its architecture."""
    import shutil

    from transferlab.cli.predict import objective_of

    foreign = tmp_path / "foreign"
    shutil.copytree(run["dir"] / "export", foreign)
    (foreign / "transferlab.json").unlink()
    assert objective_of(foreign)[0] is Regression
