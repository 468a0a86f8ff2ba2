"""The TF-IDF + logistic-regression arm: same splits as a transformer run, the same metrics.json keys."""

import json
import sys

import pytest


def _baseline(*overrides):
    from transferlab.cli.baseline import main

    old = sys.argv
    sys.argv = ["transferlab-baseline", *overrides]
    try:
        main()
    finally:
        sys.argv = old


def test_tfidf_arm_writes_the_classification_keys_and_separates_a_separable_task(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    rows = ["text,label"] + [
        f"{w} thing number {i},{lab}" for i in range(60) for w, lab in [("great", "pos"), ("awful", "neg")]
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    _baseline(
        "data=files",
        f"data.train={tmp_path / 'train.csv'}",
        "data.label_column=label",
        "data.train_fraction=0.5",
        f"hydra.run.dir={run}",
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["test/acc"] == metrics["val/acc"] == 1.0 and metrics["test/f1_macro"] == 1.0
    assert metrics["params/trainable"] == metrics["params/total"] > 0 and metrics["baseline/C"] > 0
    import yaml

    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["init"] == "tfidf" and config["data"]["train_fraction"] == 0.5  # the report's row keys


def test_tfidf_arm_refuses_unlabeled_data_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _baseline("data=wordnet_corpus", "objective=mlm", f"hydra.run.dir={tmp_path / 'run'}")
    assert info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the TF-IDF baseline classifies: objective=mlm has no label column"]


def test_a_pair_task_reads_both_texts_and_regression_gets_ridge_with_its_own_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    # the label is in the second text only: a baseline that read the first alone would sit at chance
    rows = ["a,b,label,score"] + [
        f"same words {i},{w} here {i},{lab},{score}"
        for i in range(80)
        for w, lab, score in [("great", "pos", "4.5"), ("awful", "neg", "1.0")]
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    common = [
        "data=files",
        f"data.train={tmp_path / 'train.csv'}",
        "data.text_column=a",
        "data.text_pair_column=b",
        "data.train_fraction=0.5",
    ]
    _baseline(*common, "data.label_column=label", f"hydra.run.dir={tmp_path / 'pairs'}")
    metrics = json.loads((tmp_path / "pairs" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["test/acc"] == 1.0 and metrics["val/acc"] == 1.0

    _baseline(*common, "objective=regression", "data.label_column=score", f"hydra.run.dir={tmp_path / 'reg'}")
    metrics = json.loads((tmp_path / "reg" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["baseline/alpha"] in (0.1, 0.3, 1.0, 3.0, 10.0)
    assert {"test/mse", "test/rmse", "test/pearson", "test/spearman", "val/rmse"} <= set(metrics)
    assert "test/acc" not in metrics
    assert metrics["test/pearson"] > 0.8  # 1.0 vs 4.5, told apart by one word of the second text
