"""Faults and resume: a killed run resumes to the same weights and metrics as an uninterrupted one, SIGTERM saves
and says how to resume, checkpoints are written atomically and loaded safely, NaN stops or skips, and no secret from
the environment lands in a run dir.

The subprocess runs are short (12 steps of a tiny BERT) but checkpoint every 2 steps, so a kill lands mid-run.
"""

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective

ARGS = [
    "experiment=quickstart",
    "debug=fast",
    "logger=default",
    "trainer.max_epochs=10",
    "trainer.max_steps=12",
    "callbacks.checkpoint.every_n_train_steps=2",
    "trainer.deterministic=true",
    "seed=7",
    "callbacks.progress_bar=false",
]
SECRETS = {"WANDB_API_KEY": "fake-wandb-secret-123", "HF_TOKEN": "hf_fakesecret456"}
CLI = [sys.executable, "-m", "transferlab.train"]


def _start(run: Path, *extra: str, argv: list | None = None) -> subprocess.Popen:
    """The CLI in the background; its output goes to <run>.<n>.log beside the run dir (grepped for secrets)."""
    n = len(list(run.parent.glob(f"{run.name}.*.log")))
    log = open(run.parent / f"{run.name}.{n}.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", **SECRETS}
    return subprocess.Popen(
        argv or [*CLI, *ARGS, f"hydra.run.dir={run}", *extra], stdout=log, stderr=subprocess.STDOUT, env=env
    )


def _finish(p: subprocess.Popen) -> int:
    return p.wait(timeout=600)


def _signal_after_first_checkpoint(run: Path, sig: int, argv: list | None = None) -> int:
    """Start a run (ARGS, or the command `argv`), wait for its first periodic last.ckpt, send `sig`; the exit code."""
    p = _start(run, argv=argv)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not last.exists():
        assert p.poll() is None, f"the run ended before its first checkpoint: {p.returncode}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p.send_signal(sig)
    return _finish(p)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _last_line(run: Path, n: int) -> str:
    return (run.parent / f"{run.name}.{n}.log").read_text().strip().splitlines()[-1]


def _assert_equal(a, b, where="checkpoint"):
    """Exact equality of nested checkpoint contents (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _assert_same_training(ref: Path, other: Path) -> None:
    timing = ("time/", "throughput/")
    ma = {k: v for k, v in _metrics(ref).items() if not k.startswith(timing)}
    mb = {k: v for k, v in _metrics(other).items() if not k.startswith(timing)}
    assert ma == mb and ma["status"] == "ok"
    a = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(other / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    _assert_equal(a["state_dict"], b["state_dict"], "state_dict")
    _assert_equal(a["optimizer_states"], b["optimizer_states"], "optimizer_states")
    assert (ref / "export" / "model.safetensors").read_bytes() == (other / "export" / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """An uninterrupted run, and the same run SIGKILLed after its first checkpoint then resumed (resume=auto)."""
    root = tmp_path_factory.mktemp("resume")
    ref, cut = root / "ref", root / "cut"
    assert _finish(_start(ref)) == 0
    # Both runs share one tokenizer: tokenizers' WordPiece training is not deterministic (huggingface/tokenizers#1794).
    shutil.copytree(ref / "tokenizer", cut / "tokenizer")
    killed = _signal_after_first_checkpoint(cut, signal.SIGKILL)
    killed_at = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert not (cut / "metrics.json").exists()  # the kill landed mid-run
    assert _finish(_start(cut, "resume=auto")) == 0
    return {"root": root, "ref": ref, "cut": cut, "killed": killed, "killed_at": killed_at}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_and_metrics(runs):
    assert runs["killed"] == -signal.SIGKILL and 0 < runs["killed_at"] < 12
    _assert_same_training(runs["ref"], runs["cut"])


@pytest.mark.slow
def test_sigterm_saves_last_ckpt_and_says_how_to_resume(runs):
    run = runs["root"] / "term"
    shutil.copytree(runs["ref"] / "tokenizer", run / "tokenizer")
    assert _signal_after_first_checkpoint(run, signal.SIGTERM) == 128 + signal.SIGTERM
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    line = _last_line(run, 0)
    assert line.startswith(
        f"error: interrupted by SIGTERM at step {step}; saved {run / 'checkpoints' / 'last.ckpt'}; resume with: "
    )
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[0] == "transferlab-train" and command[-2:] == [f"hydra.run.dir={run}", "resume=auto"]
    m = _metrics(run)
    assert m["status"] == "interrupted" and "interrupted by SIGTERM" in m["error"]

    assert _finish(_start(run, argv=[*CLI, *command[1:]])) == 0  # the very command it printed
    _assert_same_training(runs["ref"], run)


@pytest.mark.slow
def test_resume_from_a_path_continues_that_run_in_a_new_dir(runs):
    """resume=PATH of a finished run: nothing left to train, its tokenizer is reused, the same metrics come out."""
    run = runs["root"] / "from_path"
    assert _finish(_start(run, f"resume={runs['ref'] / 'checkpoints' / 'last.ckpt'}")) == 0
    assert (run / "tokenizer" / "tokenizer.json").read_bytes() == (
        runs["ref"] / "tokenizer" / "tokenizer.json"
    ).read_bytes()
    # Nothing was validated in the new dir, so no checkpoint of its own was scored best: it tests the weights it
    # resumed (the same test metrics) and records no val/best_loss of its own.
    timing = ("time/", "throughput/", "val/best_")
    assert {k: v for k, v in _metrics(run).items() if not k.startswith(timing)} == {
        k: v for k, v in _metrics(runs["ref"]).items() if not k.startswith(timing)
    }
    assert "val/best_loss" in _metrics(runs["ref"]) and "val/best_loss" not in _metrics(run)


@pytest.mark.slow
def test_resume_with_another_optimizer_is_refused_before_training(runs):
    """The checkpoint names the optimizer whose state it holds; SGD cannot continue AdamW's moments."""
    last = runs["ref"] / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["transferlab"]["optimizer"] == "adamw"
    run = runs["root"] / "other_optimizer"
    assert _finish(_start(run, f"resume={last}", "optimizer.name=sgd")) == 1  # an input error, as a missing column
    assert _last_line(run, 0) == (
        f"error: resume={last}: the checkpoint holds adamw's optimizer state, this run asks for optimizer.name=sgd; "
        "resume with optimizer.name=adamw, or start a new run in another hydra.run.dir from its weights "
        f"(model=pretrained model.name_or_path={runs['ref'] / 'export'})"
    )
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize(
    "recorded, resume, problem",
    [
        ({"optimizer": "adamw"}, "auto", None),  # the same optimizer continues
        ({}, "auto", None),  # a checkpoint from before the name was recorded: not checked
        ({"optimizer": "adafactor"}, "auto", "resume=auto ({}): the checkpoint holds adafactor's optimizer state"),
    ],
)
def test_the_optimizer_check_names_the_setting_as_given(tmp_path, recorded, resume, problem):
    from transferlab.run.preflight import check_same_optimizer

    cfg = OmegaConf.create({"resume": resume, "optimizer": {"name": "adamw"}})
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"  # an interrupted run: no export/ beside it
    if problem is None:
        check_same_optimizer(cfg, {"transferlab": recorded}, str(last))
        return
    with pytest.raises(TransferlabError) as e:
        check_same_optimizer(cfg, {"transferlab": recorded}, str(last))
    assert str(e.value) == (
        problem.format(last) + ", this run asks for optimizer.name=adamw; resume with optimizer.name=adafactor, or "
        "start a new run in another hydra.run.dir"
    )


@pytest.mark.slow
def test_no_secret_from_the_environment_lands_in_a_run(runs):
    root = runs["root"]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.parent.name == "wandb" for p in files) and any(p.name == "config.yaml" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS.values():
            assert secret.encode() not in data, f"{secret} in {path}"


@pytest.mark.slow
def test_export_is_safetensors_only(runs):
    names = {p.name for p in (runs["ref"] / "export").iterdir()}
    assert "model.safetensors" in names and not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)


@pytest.mark.slow
def test_resumed_run_continues_the_same_wandb_run(runs):
    # wandb's offline dirs end with the run id; the id is the run dir's name, so both segments are one run.
    segments = sorted((runs["cut"] / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and all(p.name.endswith(f"-{runs['cut'].name}") for p in segments)
    assert (runs["cut"] / "csv" / "metrics.0.csv").is_file()  # the segment before the kill keeps its CSV log


def killed_and_resumed(root: Path, args: list) -> tuple:
    """The CLI with `args`: once uninterrupted (ref), once SIGKILLed after its first checkpoint and then resumed
    with resume=auto (cut, sharing ref's tokenizer). Returns (ref, cut, the checkpoint the kill left behind)."""
    ref, cut = root / "ref", root / "cut"
    assert _finish(_start(ref, argv=[*CLI, *args, f"hydra.run.dir={ref}"])) == 0
    shutil.copytree(ref / "tokenizer", cut / "tokenizer")
    assert (
        _signal_after_first_checkpoint(cut, signal.SIGKILL, argv=[*CLI, *args, f"hydra.run.dir={cut}"])
        == -signal.SIGKILL
    )
    killed = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)
    assert _finish(_start(cut, argv=[*CLI, *args, f"hydra.run.dir={cut}", "resume=auto"])) == 0
    return ref, cut, killed


@pytest.fixture(scope="module")
def mlm_runs(tmp_path_factory) -> dict:
    """MLM (random masks) with 2 loader worker processes: uninterrupted, and SIGKILLed then resumed."""
    root = tmp_path_factory.mktemp("resume_workers")
    args = ["experiment=pretrain_mlm", *ARGS[1:], "data.num_workers=2", "data.max_train_samples=600"]
    ref, cut, killed = killed_and_resumed(root, args)
    return {"ref": ref, "cut": cut, "killed_at": killed["global_step"]}


@pytest.mark.slow
def test_mlm_with_loader_workers_resumes_bit_exactly(mlm_runs):
    """Masks drawn per batch from (seed, epoch, rank, position), not from a worker's RNG, so worker processes lose
    nothing when killed: the resumed run ends with the uninterrupted run's weights, optimizer state and metrics."""
    assert 0 < mlm_runs["killed_at"] < 12
    _assert_same_training(mlm_runs["ref"], mlm_runs["cut"])


# --- units: sampler position, atomic writes, safe loads, signals, NaN ---------------------------------------------


def test_batch_sampler_resumes_mid_epoch_at_the_same_batches():
    from transferlab.data.buckets import BatchSampler

    sampler = BatchSampler(list(range(100)), 8, shuffle=True, bucket=True, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.resume_at(2, 5)
    assert list(sampler) == full[5:]
    assert list(sampler) == full  # the skip applies to one iteration only
    sampler.set_epoch(3)
    assert list(sampler) != full  # and every epoch has its own order


def test_atomic_checkpoint_io_never_leaves_a_torn_file(tmp_path, monkeypatch):
    from transferlab.run.checkpoints import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    good = target.read_bytes()

    def torn_save(obj, f):  # a kill mid-write: half the bytes out, then the process dies
        f.write(good[: len(good) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, target)
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind
    monkeypatch.undo()
    io.save_checkpoint({"step": torch.tensor(3)}, target)
    assert torch.load(target, weights_only=True)["step"] == 3


class _NotATensor:
    pass


def test_checkpoints_load_with_weights_only(tmp_path):
    from transferlab.run.preflight import read_checkpoint

    path = tmp_path / "code.ckpt"
    torch.save({"state_dict": {}, "loops": {}, "optimizer_states": [], "extra": _NotATensor()}, path)
    with pytest.raises(TransferlabError, match="a safe load \\(weights_only=True\\) refuses"):
        read_checkpoint(str(path))
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(TransferlabError, match="not a Lightning training checkpoint \\(no loops, optimizer_states\\)"):
        read_checkpoint(str(path))


def test_rng_state_round_trips_through_a_safe_load(tmp_path):
    from transferlab.run.resume import rng_state, set_rng_state

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_ctrl_c_takes_the_sigterm_path_and_sigusr1_is_left_alone():
    from transferlab.run.signals import sigint_as_sigterm

    seen = []
    old_term = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    usr1 = signal.getsignal(signal.SIGUSR1)
    try:
        with sigint_as_sigterm() as received:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            assert received == [signal.SIGINT] and seen == [signal.SIGTERM]
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # a second Ctrl+C stops at once
            assert signal.getsignal(signal.SIGUSR1) is usr1  # Lightning's SLURM requeue handler stays in charge
    finally:
        signal.signal(signal.SIGTERM, old_term)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_records_failure(tmp_path, capsys):
    from transferlab.train import main

    run = tmp_path / "run"
    old = sys.argv
    sys.argv = ["transferlab-train", "experiment=quickstart", "debug=fast", "optimizer.lr=1e9", f"hydra.run.dir={run}"]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    assert info.value.code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: loss is nan at step ") and "set on_nan=skip" in line
    m = _metrics(run)
    assert m["status"] == "failed" and "loss is nan at step" in m["error"]
    assert not (run / "export").exists()


class _LeastSquares(Objective):
    """A stand-in objective: squared error of a linear model; a batch flagged `poison` has a NaN loss."""

    metrics = {"train": {}, "val": {}, "test": {}}

    def __init__(self):
        pass  # a stand-in: no config, tokenizer or data

    def step(self, model, batch, stage):
        loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        return loss * float("nan") if batch["poison"] else loss


def test_on_nan_skip_skips_only_the_bad_batch():
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from transferlab.config.schema import OptimizerConfig, SchedulerConfig
    from transferlab.freeze.policies import TrainAll
    from transferlab.run.module import TransferModule

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    policy = TrainAll(None)
    module = TransferModule(
        policy.apply(model),
        _LeastSquares(),
        policy,
        OmegaConf.structured(OptimizerConfig(lr=0.1)),
        OmegaConf.structured(SchedulerConfig(name="constant", warmup_ratio=0.0)),
        on_nan="skip",
    )
    batches = [{"x": torch.randn(8, 4), "y": torch.randn(8, 1), "n_rows": 8, "poison": i == 2} for i in range(5)]
    changed = []

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.before = model.weight.detach().clone()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            changed.append(not torch.equal(self.before, model.weight))

    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Watch()],
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    assert changed == [True, True, False, True, True]
    assert module.skipped_batches == 1 and torch.isfinite(model.weight).all()
