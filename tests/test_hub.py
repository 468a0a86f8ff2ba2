"""The hub paths, for real and offline: data=hub on a local dataset repository (datasets reads a local dir of data
files as it reads a hub repo, configs included) and model=pretrained on a hub id resolved from an HF cache laid out
as the hub client lays it out."""

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from transferlab.config.schema import DataConfig
from transferlab.data.loading import load_splits
from transferlab.objectives.classification import Classification

ROWS = [
    ("a small dog runs", "animal"),
    ("the red car drives", "vehicle"),
    ("a cat sleeps", "animal"),
    ("a bus stops", "vehicle"),
]
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train.csv
  - split: test
    path: data/test.csv
- config_name: small
  data_files:
  - split: train
    path: data/small.csv
---
"""


def _repo(root):
    (root / "data").mkdir(parents=True)
    rows = lambda n: "sentence,category\n" + "".join(f"{t} {i},{c}\n" for i in range(n) for t, c in ROWS)  # noqa: E731
    (root / "data" / "train.csv").write_text(rows(20))
    (root / "data" / "test.csv").write_text(rows(3))
    (root / "data" / "small.csv").write_text(rows(5))
    (root / "README.md").write_text(CARD)
    return root


def test_data_hub_reads_a_dataset_repository_its_splits_columns_and_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    repo = _repo(tmp_path / "repo")
    cfg = OmegaConf.structured(
        DataConfig(
            source="hub",
            path=str(repo),
            train="train",
            validation="validation",
            test="test",
            text_column="sentence",
            label_column="category",
        )
    )
    raw, dropped = load_splits(cfg, Classification)
    assert dropped == {} and {s: len(d) for s, d in raw.items()} == {
        "train": 72,
        "validation": 8,
        "test": 12,
    }  # validation carved
    assert raw["test"]["text"][:2] == ["a small dog runs 0", "the red car drives 0"] and set(raw["train"]["label"]) == {
        "animal",
        "vehicle",
    }
    cfg.config_name = "small"
    small, _ = load_splits(cfg, Classification)
    assert (
        len(small["train"]) + len(small["validation"]) + len(small["test"]) == 20
    )  # its own file; both held-out splits carved
    cfg.config_name, cfg.train = None, "dev"
    with pytest.raises(Exception, match="data.train=dev: no such split in .*repo; splits found: train, test"):
        load_splits(cfg, Classification)


def _hub_cache(cache, repo_id: str):
    """A tiny BERT classifier stored as huggingface_hub stores a download: blobs named by content, a snapshot of
    links named by the commit, and refs/main naming that commit."""
    import hashlib

    from transformers import BertConfig, BertForSequenceClassification

    from transferlab.models.tokenizer import _train_wordpiece

    staged = cache.parent / "staged"
    BertForSequenceClassification(
        BertConfig(
            vocab_size=200,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=2,
        )
    ).save_pretrained(staged)
    _train_wordpiece(
        iter([[t for t, _ in ROWS] * 20]), vocab_size=200, min_frequency=1, lowercase=True
    ).save_pretrained(staged)
    root = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for file in staged.iterdir():
        data = file.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


@pytest.mark.slow
def test_model_pretrained_resolves_a_hub_id_from_the_cache_and_data_hub_trains_end_to_end(tmp_path):
    cache = tmp_path / "hub"
    _hub_cache(cache, "acme/tiny-bert")
    repo = _repo(tmp_path / "repo")
    run = tmp_path / "run"
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "hf"),
        "TRANSFERLAB_CACHE": str(tmp_path / "tl"),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "transferlab.train",
            "debug=fast",
            "model=pretrained",
            "model.name_or_path=acme/tiny-bert",
            "tokenizer=pretrained",
            "data=hub",
            f"data.path={repo}",
            "data.validation=null",
            "data.text_column=sentence",
            "data.label_column=category",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and "test/acc" in metrics
    card = (run / "export" / "README.md").read_text()
    assert "base_model: acme/tiny-bert" in card and "datasets:\n- " + str(repo) in card
