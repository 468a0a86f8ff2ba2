"""The transfer study's selection on validation (multirun.sh --tune, report/select.py) and the user's data reaching
every arm: planted grid runs, stub commands that log their argv, and grid runs holding the configs Hydra writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from transferlab.report.select import RULE, main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GRID = ["1e-4", "5e-4", "1e-3"]


def _plant(tune: Path, job: int, init: str, freeze: str, fraction: float, lr: float, metrics: dict) -> None:
    """A grid run as Hydra and transferlab-train leave it: the resolved config and metrics.json."""
    config = {"init": init, "seed": 1, "freeze": {"name": freeze}, "data": {"train_fraction": fraction}}
    config["optimizer"] = {"lr": lr, "weight_decay": 0.01}
    (tune / str(job) / ".hydra").mkdir(parents=True)
    (tune / str(job) / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (tune / str(job) / "metrics.json").write_text(json.dumps(metrics))


def test_selection_uses_val_loss_never_test_and_writes_the_selection_file(tmp_path, capsys):
    tune = tmp_path / "tune"
    # pretrained/none/0.1: val/loss picks 5e-4, while test/loss and test/acc would pick 1e-4
    for job, (lr, val, test) in enumerate([(1e-4, 0.9, 0.1), (5e-4, 0.7, 0.9), (1e-3, 0.8, 0.5)]):
        metrics = {"status": "ok", "val/loss": val, "val/acc": 0.5, "test/loss": test, "test/acc": 1 - test}
        _plant(tune, job, "pretrained", "none", 0.1, lr, metrics)
    # scratch/none/0.1: 1e-4 failed, 5e-4 diverged (nan), 1e-3 never finished -> nothing scored, no choice
    _plant(tune, 3, "scratch", "none", 0.1, 1e-4, {"status": "failed", "error": "boom", "test/loss": 0.0})
    _plant(tune, 4, "scratch", "none", 0.1, 5e-4, {"status": "ok", "val/loss": float("nan"), "test/loss": 0.0})
    _plant(tune, 5, "scratch", "none", 0.1, 1e-3, {})
    (tune / "5" / "metrics.json").unlink()
    # scratch/backbone/1.0: equal val/loss -> the earlier grid point
    for job, lr in enumerate([1e-4, 5e-4, 1e-3], start=6):
        _plant(tune, job, "scratch", "backbone", 1.0, lr, {"val/loss": 0.5, "test/loss": 1e-3 / lr})
    # pretrained/none/1.0: the final weights' val/loss would pick 1e-3, the tested checkpoints' val/best_loss 5e-4
    for job, (lr, final, best) in enumerate([(1e-4, 0.9, 0.8), (5e-4, 0.7, 0.4), (1e-3, 0.5, 0.45)], start=9):
        _plant(tune, job, "pretrained", "none", 1.0, lr, {"val/loss": final, "val/best_loss": best, "test/loss": 0})

    rc = main(["select", str(tune), "--out", str(tmp_path / "tuning.json"), "--grid=lr=" + ",".join(GRID)])
    assert rc == 1  # one arm had nothing to choose from
    tuning = json.loads((tmp_path / "tuning.json").read_text())

    def scores(rows, read="val/loss"):
        return [
            {"optimizer.lr": lr, "val/loss": v, "read": read if s == "ok" else None, "status": s, "run": r}
            for lr, (v, s, r) in zip(GRID, rows)
        ]

    assert tuning == {
        "rule": RULE,
        "metric": "val/loss",
        "mode": "min",
        "grid": {"optimizer.lr": GRID},
        "arms": [
            {
                "init": "pretrained",
                "freeze": "none",
                "data.train_fraction": 0.1,
                "scores": scores([(0.9, "ok", "0"), (0.7, "ok", "1"), (0.8, "ok", "2")]),
                "chosen": {"optimizer.lr": "5e-4"},
            },
            {
                "init": "pretrained",
                "freeze": "none",
                "data.train_fraction": 1.0,
                "scores": scores([(0.8, "ok", "9"), (0.4, "ok", "10"), (0.45, "ok", "11")], read="val/best_loss"),
                "chosen": {"optimizer.lr": "5e-4"},
            },
            {
                "init": "scratch",
                "freeze": "backbone",
                "data.train_fraction": 1.0,
                "scores": scores([(0.5, "ok", "6"), (0.5, "ok", "7"), (0.5, "ok", "8")]),
                "chosen": {"optimizer.lr": "1e-4"},
            },
            {
                "init": "scratch",
                "freeze": "none",
                "data.train_fraction": 0.1,
                "scores": scores([(None, "failed", "3"), (None, "ok", "4"), (None, "missing", "5")]),
                "chosen": None,
            },
        ],
    }
    assert RULE.startswith("lowest val/loss") and "test metrics are never read" in RULE
    assert main(["overrides", str(tmp_path / "tuning.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "init=pretrained freeze=none data.train_fraction=0.1 optimizer.lr=5e-4",
        "init=pretrained freeze=none data.train_fraction=1.0 optimizer.lr=5e-4",
        "init=scratch freeze=backbone data.train_fraction=1.0 optimizer.lr=1e-4",
    ]


def test_the_report_states_the_selection_and_its_rule(tmp_path):
    tune = tmp_path / "study" / "tune"
    for job, (lr, val) in enumerate([(1e-4, 0.9), (1e-3, None)]):
        _plant(tune, job, "pretrained", "none", 0.1, lr, {"val/loss": val, "test/loss": 0.0})
    assert main(["select", str(tune), "--out", str(tmp_path / "study" / "tuning.json"), "--grid=lr=1e-4,1e-3"]) == 0
    _plant(tmp_path / "study" / "sweep", 0, "pretrained", "none", 0.1, 1e-4, {"test/acc": 0.5})

    from transferlab.report.study import main as report

    report([str(tmp_path / "study" / "sweep"), "--out", str(tmp_path / "study")])
    section = (tmp_path / "study" / "report.md").read_text().split("## Selection on validation\n")[1]
    assert section.splitlines() == [
        "",
        f"From `{tmp_path / 'study' / 'tuning.json'}`. Grid: `optimizer.lr` ∈ {{1e-4, 1e-3}}. Rule: {RULE}.",
        "The TF-IDF arm picks its regularisation C on validation itself.",
        "",
        "| init | freeze | train fraction | chosen | val/loss per grid value |",
        "|---|---|---|---|---|",
        "| pretrained | none | 0.1 | optimizer.lr=1e-4 | 1e-4: 0.9000, 1e-3: – |",
    ]


def test_selection_refuses_a_run_outside_the_grid(tmp_path, capsys):
    _plant(tmp_path / "tune", 0, "scratch", "none", 1.0, 3e-3, {"val/loss": 0.1})
    assert main(["select", str(tmp_path / "tune"), "--out", str(tmp_path / "t.json"), "--grid=lr=1e-4,1e-3"]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "t.json").exists()


# ---------------------------------------------------------------- multirun.sh with stub commands
STUB = """#!{python}
# Logs its argv; as a multirun it leaves each job's config and a planted metrics.json (val/loss is lowest at lr 1e-4
# for pretrained and 1e-3 for scratch; test/loss the opposite), as transferlab-train would.
import itertools, json, math, sys
from pathlib import Path
import torch
import yaml
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps([Path(sys.argv[0]).name, *args]) + "\\n")
kv = dict(a.split("=", 1) for a in args if "=" in a)
if "-m" in args and "hydra.sweep.dir" in kv and Path(sys.argv[0]).name == "train":
    axes = ["init", "freeze", "data.train_fraction", "seed", "optimizer.lr"]
    for job, values in enumerate(itertools.product(*(kv.get(k, "0").split(",") for k in axes))):
        init, freeze, frac, seed, lr = values
        config = dict(init=init, seed=int(seed), freeze=dict(name=freeze), data=dict(train_fraction=float(frac)),
                      optimizer=dict(lr=float(lr)))
        d = Path(kv["hydra.sweep.dir"]) / str(job)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        best = -4 if init == "pretrained" else -3
        val = abs(math.log10(float(lr)) - best)
        metrics = {{"val/loss": val, "test/loss": -val}}
        if kv.get("callbacks.checkpoint.monitor") == "val/acc":  # accuracy peaks a decade above the loss's best
            metrics["val/best_acc"] = -abs(math.log10(float(lr)) - best - 1)
        (d / "metrics.json").write_text(json.dumps(dict(status="ok", **metrics)))
"""


def _stubbed(tmp_path, *argv, env=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "argv.log"
    for name in ("train", "baseline", "report"):
        (tmp_path / name).write_text(STUB.format(python=sys.executable, log=str(log)))
        (tmp_path / name).chmod(0o755)
    stubs = {
        "TRAIN": str(tmp_path / "train"),
        "BASELINE": str(tmp_path / "baseline"),
        "REPORT": str(tmp_path / "report"),
    }
    env = {**os.environ, **stubs, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    out = subprocess.run(
        [str(ROOT / "multirun.sh"), "--source", "SRC", "--out", str(tmp_path / "out"), *argv],
        capture_output=True,
        text=True,
        env=env,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return out, calls


def _study_args(call):
    """The argv of a call minus the parts every sweep call shares (experiment, source, output dirs)."""
    shared = ("paths.", "hydra.sweep.dir=", "pretrained_source=")
    return [a for a in call[1:] if a not in ("-m", "experiment=study") and not a.startswith(shared)]


def test_tune_prints_its_cost_then_runs_each_arms_choice_with_every_seed(tmp_path):
    out, calls = _stubbed(
        tmp_path, "--seeds", "3", "--fractions", "0.1,1.0", "--freezes", "none", "--tune", "lr=" + ",".join(GRID),
        "--select-by", "loss",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.splitlines()[0]
        == "tuning: 3 values x 2 arms x 2 fractions = 12 runs, then 2 x 2 x 3 seeds = 12 runs"
    )
    (study,) = (tmp_path / "out" / "study").iterdir()
    train = [_study_args(c) for c in calls if c[0] == "train"]
    assert train[0] == ["init=scratch,pretrained", "freeze=none", "data.train_fraction=0.1,1.0", "seed=1"] + [
        "optimizer.lr=1e-4,5e-4,1e-3"
    ]
    assert train[1:] == [
        [f"init={init}", "freeze=none", f"data.train_fraction={frac}", f"optimizer.lr={lr}", "seed=1,2,3"]
        for init, lr in (("pretrained", "1e-4"), ("scratch", "1e-3"))
        for frac in ("0.1", "1.0")
    ]
    sweep_dirs = [a for c in calls if c[0] == "train" for a in c if a.startswith("hydra.sweep.dir=")]
    assert sweep_dirs == [f"hydra.sweep.dir={study}/{d}" for d in ("tune", "sweep/pretrained_none_0.1")] + [
        f"hydra.sweep.dir={study}/sweep/{d}" for d in ("pretrained_none_1.0", "scratch_none_0.1", "scratch_none_1.0")
    ]
    tuning = json.loads((study / "tuning.json").read_text())
    assert [a["chosen"] for a in tuning["arms"]] == [{"optimizer.lr": "1e-4"}] * 2 + [{"optimizer.lr": "1e-3"}] * 2
    assert [c[0] for c in calls] == ["train"] * 5 + ["baseline", "report"]


def test_tuning_selects_by_accuracy_by_default_checkpointing_every_run_by_it(tmp_path):
    out, calls = _stubbed(tmp_path, "--fractions", "0.1", "--freezes", "none", "--tune", "lr=1e-4,1e-3")
    assert out.returncode == 0, out.stderr
    monitor = ["callbacks.checkpoint.monitor=val/acc", "callbacks.checkpoint.mode=max"]
    train = [c for c in calls if c[0] == "train"]
    assert len(train) == 3 and all(set(monitor) <= set(c) for c in train)  # tuning, then both arms
    (study,) = (tmp_path / "out" / "study").iterdir()
    tuning = json.loads((study / "tuning.json").read_text())
    assert (tuning["metric"], tuning["mode"]) == ("val/acc", "max") and tuning["rule"].startswith("highest val/acc")
    # by loss pretrained would take 1e-4; its accuracy is highest at 1e-3
    assert [(a["init"], a["chosen"]) for a in tuning["arms"]] == [
        ("pretrained", {"optimizer.lr": "1e-3"}),
        ("scratch", {"optimizer.lr": "1e-3"}),
    ]
    assert {r["read"] for a in tuning["arms"] for r in a["scores"]} == {"val/best_acc"}
    for argv, error in [
        (["--select-by", "acc"], "error: --select-by acc picks among --tune values; add --tune lr=V1,V2,..."),
        (["--select-by", "perplexity", "--tune", "lr=1e-4,1e-3"], "error: --select-by perplexity: choose one of "
         "loss, acc, f1_macro, mcc"),
        (["--select-by", "acc", "--tune", "lr=1e-4,1e-3", "--", "callbacks.checkpoint.monitor=val/loss"],
         "error: callbacks.checkpoint.monitor=val/loss: --select-by acc sets the checkpoint monitor; drop one"),
        (["--select-by", "mcc", "--tune", "lr=1e-4,1e-3", "--", "objective=multilabel_classification"],
         "error: --select-by mcc: objective=multilabel_classification logs no val/mcc; choose one of loss, f1_macro"),
        (["--tune", "lr=1e-4,1e-3", "--", "objective=regression"],
         "error: --select-by acc: objective=regression logs no val/acc; choose one of loss"),
    ]:  # fmt: skip
        out, calls = _stubbed(tmp_path / "bad", *argv)
        assert (out.returncode, out.stderr.strip(), calls) == (2, error, []), argv


def test_tune_from_the_environment_and_a_bad_grid_refused_before_any_work(tmp_path):
    out, calls = _stubbed(
        tmp_path, "--freezes", "none,backbone,lora", env={"TUNE": "lr=1e-4,1e-3 trainer.max_steps=4,8"}
    )
    assert out.stdout.splitlines()[0] == (
        "tuning: 4 values (optimizer.lr 2 x trainer.max_steps 2) x 6 arms x 3 fractions = 72 runs, "
        "then 6 x 3 x 3 seeds = 54 runs"
    )
    assert _study_args(calls[0])[-2:] == ["optimizer.lr=1e-4,1e-3", "trainer.max_steps=4,8"]
    for grid, error in [
        ("lr=", "error: --tune 'lr=' has an empty value; e.g. --tune lr=1e-4,5e-4,1e-3"),
        ("lr=interval(1e-5,1e-3)", "error: --tune 'lr=interval(1e-5,1e-3)' is not a finite list of values; "
         "list them, e.g. --tune lr=1e-4,5e-4,1e-3"),
    ]:  # fmt: skip
        out, calls = _stubbed(tmp_path / grid[:4], "--tune", grid)
        assert (out.returncode, out.stderr.splitlines(), calls) == (2, [error], [])
        assert not (tmp_path / grid[:4] / "out").exists()


def test_data_overrides_reach_the_baseline_and_the_tuning_runs_not_pretraining(tmp_path):
    user = ["data=files", "data.train=my.csv", "+data.label_separator=;", "objective.label_smoothing=0.1"]
    out, calls = _stubbed(tmp_path, "--freezes", "none", "--tune", "lr=1e-4,1e-3", "--", *user, "freeze.k=2")
    assert out.returncode == 0, out.stderr
    train = [c for c in calls if c[0] == "train"]
    assert all(c[-5:] == [*user, "freeze.k=2"] for c in train) and len(train) == 1 + 6  # tuning, then 2 x 3 arms
    (baseline,) = [c for c in calls if c[0] == "baseline"]
    assert baseline[-4:] == user and "freeze.k=2" not in baseline
    out, calls = _stubbed(tmp_path / "pre", "--source", "", "--", *user)  # no --source: pre-training runs
    pretrain, sweep = calls[0], calls[1]
    assert "experiment=pretrain_mlm" in pretrain and not set(user) & set(pretrain)
    assert _study_args(sweep) == [  # without --tune: the one sweep, as before, with the user's overrides
        "init=scratch,pretrained",
        "freeze=none,backbone,lora",
        "data.train_fraction=0.01,0.1,1.0",
        "seed=1,2,3",
        *user,
    ]
    assert [c for c in calls if c[0] == "baseline"][0][-4:] == user


def test_selection_reads_the_configs_hydra_writes_for_the_study(tmp_path, capsys):
    """The grid runs' .hydra/config.yaml as Hydra writes them (the study's composed config, unresolved, the grid value
    as Hydra reads it: 1e-4 becomes 0.0001): the selection finds each arm and the value it ran with."""
    from omegaconf import OmegaConf

    from transferlab.cli.front import compose

    tune = tmp_path / "tune"
    grid = [(init, lr) for init in ("scratch", "pretrained") for lr in ("1e-4", "1e-2")]
    for job, (init, lr) in enumerate(grid):
        cfg = compose(["experiment=study", f"init={init}", "pretrained_source=src", f"optimizer.lr={lr}"])
        OmegaConf.set_struct(cfg, False)
        cfg.pop("hydra")
        (tune / str(job) / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, tune / str(job) / ".hydra" / "config.yaml")
        val = {"1e-4": 0.5, "1e-2": 0.4 if init == "scratch" else 0.6}[lr]
        (tune / str(job) / "metrics.json").write_text(json.dumps({"status": "ok", "val/loss": val, "test/loss": 0}))
    assert "lr: 0.0001" in (tune / "0" / ".hydra" / "config.yaml").read_text()
    assert main(["select", str(tune), "--out", str(tmp_path / "tuning.json"), "--grid=lr=1e-4,1e-2"]) == 0
    tuning = json.loads((tmp_path / "tuning.json").read_text())
    fraction = tuning["arms"][0]["data.train_fraction"]
    assert [(a["init"], a["freeze"], a["chosen"]) for a in tuning["arms"]] == [
        ("pretrained", "none", {"optimizer.lr": "1e-4"}),
        ("scratch", "none", {"optimizer.lr": "1e-2"}),
    ]
    assert main(["overrides", str(tmp_path / "tuning.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"init=pretrained freeze=none data.train_fraction={fraction} optimizer.lr=1e-4",
        f"init=scratch freeze=none data.train_fraction={fraction} optimizer.lr=1e-2",
    ]


def test_a_run_records_the_validation_score_of_the_checkpoint_it_tests():
    """val/best_<metric>: the checkpoint saver's best score, only when test reads that checkpoint and it is val/*."""
    from types import SimpleNamespace as NS

    from transferlab.run.job import _best_score

    def trainer(monitor, score, path="best-0-10.ckpt"):
        return NS(checkpoint_callback=NS(monitor=monitor, best_model_score=score, best_model_path=path))

    assert _best_score(trainer("val/loss", torch.tensor(0.25))) == {"val/best_loss": 0.25}
    assert _best_score(trainer("val/acc", torch.tensor(0.5))) == {"val/best_acc": 0.5}
    assert _best_score(trainer("val/loss", None)) == {}  # no validation ran: test reads the final weights
    assert _best_score(trainer("val/loss", torch.tensor(0.25), path="")) == {}
    assert _best_score(trainer("train/loss", torch.tensor(0.25))) == {}
    assert _best_score(NS(checkpoint_callback=None)) == {}  # callbacks.checkpoint.enabled=false
