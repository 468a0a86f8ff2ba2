"""What transferlab borrows from its ecosystem: MLflow tracking (logger=mlflow), the user's own Lightning callbacks
(callbacks.extra) and transformers' memory levers (model.gradient_checkpointing, model.load_in)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import single_thread

from transferlab.cli.front import compose
from transferlab.config.optional import tracking_uri
from transferlab.config.validate import validate
from transferlab.errors import TransferlabError
from transferlab.train import main

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)
QUICK = ["debug=fast", "callbacks.progress_bar=false"]


def train(*overrides: str, multirun: bool = False) -> None:
    """transferlab-train in-process (debug=fast)."""
    old = sys.argv
    sys.argv = ["transferlab-train", *(["-m"] if multirun else []), *QUICK, *overrides]
    try:
        main()
    finally:
        sys.argv = old


def _client(db: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{db}")


# --- MLflow ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mlflow_run_holds_the_config_the_metrics_and_the_run_files(tmp_path):
    db, run_dir = tmp_path / "store" / "mlflow.db", tmp_path / "run"
    train("logger=mlflow", f"logger.mlflow.tracking_uri=sqlite:///{db}", f"hydra.run.dir={run_dir}")

    client = _client(db)
    experiment = client.get_experiment_by_name("train")  # the task_name
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "train/run"
    params = run.data.params
    assert params["optimizer.lr"] == "0.0005" and params["model.arch"] == "bert" and params["seed"] == "42"
    assert params["model.config.hidden_size"] == "128"  # nested config flattened with dots
    assert run.data.tags["objective"] == "classification" and run.data.tags["transferlab.run_dir"] == str(run_dir)
    # MLflow allows '/' in metric names: the keys are metrics.json's, unchanged
    recorded = json.loads((run_dir / "metrics.json").read_text())
    numeric = {k for k, v in recorded.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert {"val/loss", "test/loss", "test/acc", "throughput/tokens_per_sec", "params/total"} <= numeric
    assert numeric <= set(run.data.metrics)
    assert run.data.metrics["test/acc"] == pytest.approx(recorded["test/acc"])
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) == 8  # debug=fast: 8 train batches, logged every step
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"metrics.json", "export"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "export")] == ["export/README.md"]
    # artifacts beside the SQLite store unless logger.mlflow.artifact_location says otherwise
    stored = tmp_path / "store" / "mlartifacts" / run.info.run_id / "artifacts" / "metrics.json"
    assert json.loads(stored.read_text()) == recorded


@pytest.mark.slow
def test_mlflow_sweep_is_one_parent_run_with_a_nested_run_per_job(tmp_path):
    db, sweep_dir = tmp_path / "mlflow.db", tmp_path / "sweep"
    overrides = ["logger=mlflow", f"logger.mlflow.tracking_uri=sqlite:///{db}", "export=false", "test=false"]
    train(*overrides, "logger.mlflow.experiment=study", f"hydra.sweep.dir={sweep_dir}", "seed=1,2", multirun=True)

    client = _client(db)
    runs = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    (parent,) = parents
    assert parent.info.run_name == "train/sweep" and parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted(r.data.params["seed"] for r in children) == ["1", "2"]
    assert sorted(r.info.run_name for r in children) == ["train/sweep/0", "train/sweep/1"]
    assert all(r.info.status == "FINISHED" and "val/loss" in r.data.metrics for r in children)


def test_mlflow_store_defaults_to_sqlite_under_outputs(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose(["logger=mlflow", f"paths.output_dir={tmp_path}"])
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri(cfg) == "http://tracking.example:5000"
    explicit = compose(["logger=mlflow", "logger.mlflow.tracking_uri=sqlite:///elsewhere.db"])
    assert tracking_uri(explicit) == "sqlite:///elsewhere.db"


def test_logger_mlflow_without_the_package_names_the_extra(tmp_path):
    # mlflow made unimportable in the child, as on an install without the [mlflow] extra
    code = "import sys; sys.modules['mlflow'] = None; from transferlab.train import main; main()"
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-c", code, "debug=fast", "logger=mlflow", f"hydra.run.dir={run}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2
    assert lines == ["error: logger=mlflow needs the mlflow package; pip install transferlab[mlflow]"]
    assert not (run / "checkpoints").exists()


# --- callbacks.extra ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_user_callbacks_run_after_transferlabs_own_and_see_the_fit(tmp_path):
    hooks = tmp_path / "hooks.jsonl"
    entries = ",".join(
        f"{{_target_:callbacks_for_tests.HookRecorder,path:'{hooks}',label:{label}}}" for label in ("first", "second")
    )
    train(f"callbacks.extra=[{entries}]", f"hydra.run.dir={tmp_path / 'run'}")

    rows = [json.loads(line) for line in hooks.read_text().splitlines()]
    start = [r for r in rows if r["hook"] == "on_fit_start"]
    assert [r["label"] for r in start] == ["first", "second"]  # in the order given
    order = start[0]["callbacks"]
    ours = ["Throughput", "LastValidation", "EpochCounter", "ResumeState", "LastCheckpoint"]
    # transferlab's callbacks first, then the user's; Lightning moves ModelCheckpoint after every other callback
    assert order == [*ours, "HookRecorder", "HookRecorder", "ModelCheckpoint"]
    steps = [r for r in rows if r["hook"] == "on_train_batch_end" and r["label"] == "first"]
    assert [r["global_step"] for r in steps] == list(range(1, 9))  # every step of the fit
    assert all(r["tokens_counted"] > 0 for r in steps)  # Throughput had counted the batch before the user's hook
    (end,) = [r for r in rows if r["hook"] == "on_fit_end" and r["label"] == "first"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert end["global_step"] == 8 and end["val_loss"] == pytest.approx(metrics["val/loss"])


@pytest.mark.slow
def test_a_user_callback_that_is_no_callback_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train("callbacks.extra=[{_target_:collections.OrderedDict}]", f"hydra.run.dir={tmp_path / 'run'}")
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: callbacks.extra[0]._target_=collections.OrderedDict made a OrderedDict, not a lightning Callback; "
        "subclass lightning.pytorch.Callback"
    )


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{_target_:callbacks_for_tests.Missing}", "module 'callbacks_for_tests' has no attribute 'Missing'"),
        ("{path:x}", "callbacks.extra[0]={'path': 'x'} names no class; give {_target_: my.module.MyCallback"),
    ],
)
def test_callback_targets_are_checked_with_the_config(entry, message):
    with pytest.raises(TransferlabError) as e:
        validate(compose([f"callbacks.extra=[{entry}]"]))
    assert message in str(e.value)


# --- memory levers --------------------------------------------------------------------------------------------


class _MaskedLM:
    """What build_model asks of an objective: the HF task class and its config fields."""

    auto_class = "AutoModelForMaskedLM"
    model_kinds = ("encoder",)
    name = "mlm"

    def model_config(self) -> dict:
        return {}


class _Tokenizer:
    """What build_model asks of a tokenizer: its size and special token ids."""

    pad_token_id, cls_token_id, sep_token_id, bos_token_id, eos_token_id = 0, 2, 3, None, None

    def __len__(self) -> int:
        return 64


def _step(checkpointing: bool):
    """One forward and backward of tiny BERT built by build_model, dropout off: loss, gradients, and how often
    block 0's feed-forward ran."""
    from transferlab.models.build import build_model

    cfg = compose(
        [
            f"model.gradient_checkpointing={str(checkpointing).lower()}",
            "+model.config.hidden_dropout_prob=0.0",
            "+model.config.attention_probs_dropout_prob=0.0",
        ]
    )
    torch.manual_seed(0)
    model = build_model(cfg, _MaskedLM(), _Tokenizer())
    model.train()
    calls = []
    # inside the block: checkpointing wraps the block's forward, so hooks on the block itself run once either way
    model.bert.encoder.layer[0].intermediate.register_forward_hook(lambda *args: calls.append(1))
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 64, (4, 32), generator=generator)
    labels = torch.where(torch.rand(4, 32, generator=generator) < 0.3, ids, -100)
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return model, loss.detach(), grads, len(calls)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    plain, loss, grads, plain_calls = _step(checkpointing=False)
    checkpointed, loss_ckpt, grads_ckpt, ckpt_calls = _step(checkpointing=True)
    assert [m.bert.encoder.layer[0].gradient_checkpointing for m in (plain, checkpointed)] == [False, True]
    assert (plain_calls, ckpt_calls) == (1, 2)  # the block ran again in the backward: its activations were not kept
    torch.testing.assert_close(loss_ckpt, loss)
    assert grads.keys() == grads_ckpt.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, msg=name)


@pytest.mark.slow
def test_gradient_checkpointing_is_refused_for_a_model_without_it(tmp_path, capsys):
    # CTRL's transformers class has no gradient checkpointing
    with pytest.raises(SystemExit) as stop:
        train(
            "experiment=pretrain_clm",
            "model.arch=ctrl",
            "+model.config.dff=64",
            "model.gradient_checkpointing=true",
            f"hydra.run.dir={tmp_path / 'run'}",
        )
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: model.gradient_checkpointing=true: CTRLLMHeadModel does not support gradient checkpointing in "
        "transformers; set model.gradient_checkpointing=false"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


PRETRAINED = ["model=pretrained", "model.name_or_path=some-org/some-model", "tokenizer=pretrained"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.load_in=4bit"],
            "model.load_in=4bit quantizes pretrained weights as they load, and this model is built from scratch; "
            "use model=pretrained",
        ),
        (
            [*PRETRAINED, "model.load_in=8bit"],
            "model.load_in=8bit loads weights that no optimizer can update, and freeze=none trains them; "
            "use freeze=lora|backbone (LoRA over a 4-bit model is QLoRA)",
        ),
        (
            [*PRETRAINED, "freeze=backbone", "model.load_in=4bit", "trainer=cpu"],
            "model.load_in=4bit needs a CUDA GPU and bitsandbytes; here no CUDA GPU: run it on a CUDA machine with "
            "pip install transferlab[quantize], or drop model.load_in (model.load_in=null)",
        ),
        ([*PRETRAINED, "freeze=lora", "model.load_in=2bit"], "model.load_in=2bit is not one of: 4bit, 8bit"),
    ],
    ids=["scratch", "trains_quantized_weights", "cpu", "unknown"],
)
def test_load_in_is_refused_where_it_cannot_work(overrides, message):
    with pytest.raises(TransferlabError) as e:
        validate(compose(overrides))
    assert str(e.value).startswith(message)


def test_quantized_loading_arguments():
    """The CUDA path, as far as a CPU can check it: the BitsAndBytesConfig transformers receives."""
    if torch.cuda.is_available():
        pytest.skip("checked on the CPU only: on a GPU the device and compute dtype depend on the card")
    from unittest import mock

    from transferlab.models.build import quantized_loading

    with mock.patch("torch.cuda.is_bf16_supported", return_value=True), mock.patch.dict("os.environ", LOCAL_RANK="1"):
        four = quantized_loading("4bit")
        eight = quantized_loading("8bit")
    q = four["quantization_config"]
    assert (q.load_in_4bit, q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant) == (True, "nf4", True)
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and four["device_map"] == {"": 1}
    assert eight["quantization_config"].load_in_8bit and not eight["quantization_config"].load_in_4bit
