"""The transfer study and sweeps: multirun.sh --fast end to end, failures that don't stop a sweep, wandb per job."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def test_multirun_fast_end_to_end(tmp_path):
    out = subprocess.run(
        [str(ROOT / "multirun.sh"), "--fast", "--out", str(tmp_path)], capture_output=True, text=True, env=_env()
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (study,) = (tmp_path / "study").iterdir()
    report = (study / "report.md").read_text()
    table = report.split("## Claims")[0]
    rows = [line for line in table.splitlines() if line.startswith(("| pretrained", "| scratch", "| tfidf"))]
    # init {scratch, pretrained} x freeze {none, backbone} x fraction {0.1, 1.0}, one seed each; + the TF-IDF arm
    assert len(rows) == 10
    assert {tuple(c.strip() for c in r.split("|")[1:4]) for r in rows} == {
        (i, f, frac) for i in ("pretrained", "scratch") for f in ("backbone", "none") for frac in ("0.1", "1.0")
    } | {("tfidf", "none", frac) for frac in ("0.1", "1.0")}
    with open(study / "results.csv") as f:
        assert sum(1 for row in csv.DictReader(f) if row["status"] == "ok") == 10
    claims = report.split("## Claims")[1]
    assert "pre-trained − scratch, fine-tuned" in claims and "one seed: cannot tell (n=1)" in claims
    png = (study / "learning_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(study / "learning_curves.png").ndim == 3


def _sweep(tmp_path, *overrides, name="sweep"):
    cmd = [str(BIN / "transferlab-train"), "-m", "debug=fast", f"hydra.sweep.dir={tmp_path / name}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path)


def test_failing_job_is_recorded_and_the_sweep_goes_on_under_submitit(tmp_path):
    out = _sweep(tmp_path, "hydra/launcher=submitit_local", "optimizer.lr=1e-3,-1.0")
    assert out.returncode == 1  # the sweep's exit code says a job failed
    ok, failed = (json.loads((tmp_path / "sweep" / str(i) / "metrics.json").read_text()) for i in (0, 1))
    assert ok["status"] == "ok" and "test/acc" in ok
    assert failed["status"] == "failed" and "optimizer.lr=-1.0 must be > 0" in failed["error"]  # its own validation
    assert "1 of 2 jobs ok" in out.stdout


def test_each_sweep_job_is_its_own_wandb_run_in_the_sweep_group(tmp_path):
    out = _sweep(tmp_path, "logger=default", "seed=1,2", name="study-2026-xyz")
    assert out.returncode == 0, out.stderr[-2000:]
    ids = set()
    for job in ("0", "1"):
        (run,) = (tmp_path / "study-2026-xyz" / job / "wandb").glob("offline-run-*")
        ids.add(run.name)
        record = next(run.glob("*.wandb")).read_bytes()  # the offline run's protobuf log
        for expected in (
            b"study-2026-xyz",
            b"objective:classification",
            b"freeze:none",
            b"model:bert",
            b"init:scratch",
            b"test/acc",
        ):
            assert expected in record, expected
        assert f"finishing run transferlab/study-2026-xyz-{job}" in (run / "logs" / "debug.log").read_text()
    assert len(ids) == 2


def test_optuna_preset_minimises_val_loss(tmp_path):
    out = _sweep(tmp_path, "experiment=quickstart", "hparams_search=optuna", "hydra.sweeper.n_trials=2", name="optuna")
    assert out.returncode == 0, out.stderr[-2000:]
    import yaml

    result = yaml.safe_load((tmp_path / "optuna" / "optimization_results.yaml").read_text())
    losses = [json.loads((tmp_path / "optuna" / j / "metrics.json").read_text())["val/loss"] for j in ("0", "1")]
    assert result["best_value"] == pytest.approx(min(losses))
    assert set(result["best_params"]) == {"optimizer.lr", "optimizer.weight_decay", "scheduler.warmup_ratio"}
