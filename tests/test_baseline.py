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
