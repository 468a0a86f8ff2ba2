"""End-to-end runs through the real entry point (debug=fast): run dir contents, metrics.json, exports."""

import json
import sys
from pathlib import Path

import pytest
import torch

from transferlab.train import main

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

LABELS = [
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.communication",
    "noun.location",
    "noun.person",
    "noun.plant",
    "noun.state",
    "noun.substance",
]


def train(*overrides: str) -> Path:
    """Run transferlab-train in-process; return the run dir (hydra.run.dir when given)."""
    argv = ["transferlab-train", "debug=fast", *overrides]
    old = sys.argv
    sys.argv = argv
    try:
        main()
    finally:
        sys.argv = old
    run_dir = next((a.split("=", 1)[1] for a in overrides if a.startswith("hydra.run.dir=")), None)
    return Path(run_dir) if run_dir else None


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def pretrain(outputs):
    """A pretrain_mlm run written where ${run:pretrain_mlm} looks (outputs/pretrain_mlm/runs/<stamp>)."""
    train("experiment=pretrain_mlm", f"paths.output_dir={outputs}")
    (run,) = (outputs / "pretrain_mlm" / "runs").iterdir()
    return run


def test_pretrain_mlm_run_dir_contract(pretrain):
    m = metrics(pretrain)
    assert m["status"] == "ok"
    for key in (
        "test/loss",
        "test/acc",
        "test/perplexity",
        "val/loss",
        "params/trainable",
        "params/total",
        "throughput/tokens_per_sec",
        "time/fit_s",
    ):
        assert key in m, key
    assert m["test/perplexity"] == pytest.approx(torch.tensor(m["test/loss"]).exp().item(), rel=0.05)
    assert (pretrain / ".hydra" / "config.yaml").is_file()
    assert (pretrain / "checkpoints" / "last.ckpt").is_file()
    assert (pretrain / "tokenizer" / "tokenizer.json").is_file()
    assert (pretrain / "export" / "model.safetensors").is_file()
    from transformers import AutoModel, AutoTokenizer

    assert AutoModel.from_pretrained(pretrain / "export").config.model_type == "modernbert"
    assert AutoTokenizer.from_pretrained(pretrain / "export").mask_token == "[MASK]"


def test_finetune_via_run_resolver_then_probe_keeps_backbone(pretrain, outputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))  # a fresh feature cache
    finetune = train("experiment=finetune", f"paths.output_dir={outputs}", f"hydra.run.dir={tmp_path / 'finetune'}")
    probe = train("experiment=probe", f"paths.output_dir={outputs}", f"hydra.run.dir={tmp_path / 'probe'}")
    assert "frozen features: train miss, validation miss, test miss" in capsys.readouterr().err
    for run in (finetune, probe):
        assert metrics(run)["status"] == "ok" and 0 <= metrics(run)["test/acc"] <= 1
    from safetensors.torch import load_file

    before = load_file(pretrain / "export" / "model.safetensors")
    after = load_file(probe / "export" / "model.safetensors")
    # A linear probe trains ModernBERT's output layer alone; the prediction head under it (the MLM head's dense and
    # norm, loaded from the pre-trained export) is part of the frozen features.
    head = [k for k in after if k.startswith("classifier.")]
    assert (
        metrics(probe)["params/trainable"]
        == sum(after[k].numel() for k in head)
        < metrics(finetune)["params/trainable"] / 20
    )
    shared = [k for k in after if k.startswith(("model.layers", "model.embeddings", "head."))]
    assert shared and all(torch.equal(before[k], after[k]) for k in shared)  # the frozen backbone did not move
    tuned = load_file(finetune / "export" / "model.safetensors")
    assert not all(torch.equal(before[k], tuned[k]) for k in shared)  # the fine-tune did

    from transferlab.cli.evaluate import evaluate  # a probe checkpoint re-scores on the cached features

    (best,) = (probe / "checkpoints").glob("best-*.ckpt")
    scored = evaluate([f"ckpt_path={best}"])
    assert "frozen features: train hit, validation hit, test hit" in capsys.readouterr().err
    assert scored["test/acc"] == pytest.approx(metrics(probe)["test/acc"])


def test_a_mean_pooled_bert_probe_exports_backbone_and_head_that_reload_with_the_run_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    run = train(
        "experiment=quickstart", "freeze=backbone", f"hydra.run.dir={tmp_path / 'run'}"
    )  # tiny BERT: mean pooling
    m = metrics(run)
    assert m["status"] == "ok" and m["export/kind"] == "probe"
    from transformers import AutoTokenizer

    from transferlab.freeze.probe import load_probe

    probe, tokenizer = load_probe(run / "export"), AutoTokenizer.from_pretrained(run / "export")
    assert [probe.config.id2label[i] for i in range(10)] == LABELS and probe.pooling == "mean"
    ckpt = torch.load(next((run / "checkpoints").glob("best-*.ckpt")), map_location="cpu", weights_only=True)
    assert torch.equal(probe.probe_head.weight, ckpt["state_dict"]["model.probe_head.weight"])
    batch = tokenizer(["a small tree of the rose family", "a person who writes"], return_tensors="pt", padding=True)
    assert probe(**batch).logits.shape == (2, 10)


def test_quickstart_export_reloads_with_same_logits_and_labels(tmp_path):
    run = train("experiment=quickstart", f"hydra.run.dir={tmp_path / 'run'}")
    m = metrics(run)
    assert m["status"] == "ok" and {"test/acc", "test/f1_macro", "val/acc"} <= set(m)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(run / "export").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    assert [model.config.id2label[i] for i in range(10)] == LABELS
    ckpt = torch.load(next((run / "checkpoints").glob("best-*.ckpt")), map_location="cpu", weights_only=True)
    # the tested checkpoint's validation loss, as the checkpoint saver recorded it (what --tune selects by)
    (saver,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint{'monitor': 'val/loss'")]
    assert m["val/best_loss"] == pytest.approx(float(saver["best_model_score"])) and m["val/best_loss"] > 0
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    reference = AutoModelForSequenceClassification.from_config(model.config).eval()
    reference.load_state_dict(state)
    batch = tokenizer(["a large domesticated animal", "a tool for cutting wood"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, reference(**batch).logits, atol=1e-6)


def test_eval_command_rescores_a_checkpoint_and_missing_cells_can_be_dropped(tmp_path, capsys):
    """transferlab-eval on the best checkpoint gives the run's own test metrics; data.missing=drop counts its rows."""
    from transferlab.cli.evaluate import evaluate

    rows = ["text,label"] + [
        f"{w} item number {i},{lab}" for i in range(40) for w, lab in [("good", "pos"), ("bad", "neg")]
    ]
    rows[5], rows[9] = "good item without a label,", ",neg"
    (tmp_path / "train.csv").write_text("\n".join(rows))
    run = train(
        "data=files",
        f"data.train={tmp_path / 'train.csv'}",
        "data.label_column=label",
        "data.missing=drop",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    m = metrics(run)
    assert m["status"] == "ok" and m["data/dropped_train"] == 2
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    scored = evaluate([f"ckpt_path={best}", "callbacks.progress_bar=false"])
    assert scored["test/acc"] == pytest.approx(m["test/acc"]) and scored["test/loss"] == pytest.approx(
        m["test/loss"], rel=1e-5
    )
    # the run's own files are as they were; the evaluation has its own dir, with its record and eval-set files
    assert {p: p.read_bytes() for p in before} == before
    (out,) = (run / "eval").iterdir()
    assert {p for p in run.rglob("*") if p.is_file()} - set(before) == {
        out / name for name in ("metrics.json", "per_class.csv", "confusion_matrix.png")
    }
    record = json.loads((out / "metrics.json").read_text())
    assert record == {"checkpoint": f"checkpoints/{best.name}", "overrides": ["callbacks.progress_bar=false"], **scored}


def test_string_labels_from_own_csv_round_trip(tmp_path):
    rows = ["text,label"] + [
        f"{w} item number {i},{lab}"
        for i in range(60)
        for w, lab in [("good", "pos"), ("bad", "neg"), ("plain", "neutral")]
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows))
    run = train(
        "data=files",
        f"data.train={tmp_path / 'train.csv'}",
        "data.label_column=label",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert metrics(run)["status"] == "ok"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(run / "export")
    assert config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    assert config.label2id == {"neg": 0, "neutral": 1, "pos": 2}


def test_clm_and_gpt2_classification(tmp_path):
    clm = train("experiment=pretrain_clm", f"hydra.run.dir={tmp_path / 'clm'}")
    assert metrics(clm)["test/perplexity"] > 1
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert AutoModelForCausalLM.from_pretrained(clm / "export").config.model_type == "gpt2"
    assert AutoTokenizer.from_pretrained(clm / "export").eos_token == "<|endoftext|>"
    cls = train("model=tiny_gpt2", f"hydra.run.dir={tmp_path / 'cls'}")
    assert metrics(cls)["status"] == "ok" and "test/acc" in metrics(cls)


def test_lora_export_merges_into_a_plain_model(pretrain, tmp_path):
    run = train("experiment=lora", f"model.name_or_path={pretrain / 'export'}", f"hydra.run.dir={tmp_path / 'run'}")
    m = metrics(run)
    assert m["status"] == "ok" and m["export/kind"] == "model"
    assert m["params/trainable"] < m["params/total"] / 10
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(run / "export")
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_failed_run_records_status_and_exits_nonzero(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        train("trainer.max_epochs=1", "+trainer.no_such_arg=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert info.value.code == 1
    m = metrics(tmp_path / "run")
    assert m["status"] == "failed" and "no_such_arg" in m["error"]
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: trainer:")


def test_the_terminal_shows_the_run_not_foreign_chatter(tmp_path):
    """A default run (csv + offline wandb): the composed groups and overrides as a tree, no tips, retired-setting or
    deprecation warnings from the libraries, no FLOPs column; the last lines are the test metrics and the run dir."""
    import os
    import subprocess

    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "transferlab.train",
            "experiment=quickstart",
            "trainer.max_steps=2",
            "data.max_train_samples=64",
            "data.max_eval_samples=32",
            "callbacks.progress_bar=false",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stderr + out.stdout
    assert (
        "quickstart  (full config: run/.hydra/config.yaml; verbose=true prints it)" in text
    )  # relative to the launch dir
    for foreign in ("💡 Tip", "anonymous setting has no effect", "LeafSpec", "FLOPs"):
        assert foreign not in text, foreign
    assert (
        "\ngroups\n├── callbacks: default" in text and "│   ├── model: tiny_bert" not in text
    )  # groups at the top level
    assert "├── model: tiny_bert" in text and "overrides\n├── trainer.max_steps=2" in text
    assert "max_epochs:" not in text  # the full YAML is in .hydra/config.yaml, not on the terminal
    last = [line for line in out.stderr.splitlines() if line.strip()][-2:]
    assert last[0].startswith("test {'test/loss'") and last[1] == f"run dir {run}"


def test_a_max_steps_stop_between_validations_is_validated_and_checkpointed_inside_fit(tmp_path):
    """max_steps=5 with validation every 3 steps: step 5 is validated inside fit, where the checkpoint saver ranks
    it, so test reads the better of steps 3 and 5 (it used to be validated after fit, never saved as best)."""
    import csv

    run = train(
        "experiment=quickstart",
        "trainer.max_steps=5",
        "trainer.val_check_interval=3",
        "trainer.check_val_every_n_epoch=null",
        "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    with open(run / "csv" / "metrics.csv") as f:
        val = {int(r["step"]) + 1: float(r["val/loss"]) for r in csv.DictReader(f) if r["val/loss"]}
    assert sorted(val) == [3, 5]
    assert val[5] < val[3]  # this run improves after step 3: the final step is the best
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    assert best.name == "best-0-5.ckpt"
    assert metrics(run)["val/best_loss"] == pytest.approx(val[5])
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 5
