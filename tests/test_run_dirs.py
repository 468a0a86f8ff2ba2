"""Run dirs that cannot lie: a launch into a dir that holds a run continues it (resume=auto), replaces it
(overwrite=true) or is refused in one line with the dir left byte for byte as it was; transferlab-eval checks its
checkpoint before reading data; the model card's command round-trips through a shell.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError

ARGS = ["debug=fast", "callbacks.progress_bar=false"]
ROWS = [("the cat sleeps on a mat", "animal"), ("a red car drives fast", "vehicle")] * 10


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", "transferlab.train", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _one_line(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-3000:]
    return lines[0]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run, started with resume=auto in a dir that did not exist: a fresh dir just starts a new run."""
    run = tmp_path_factory.mktemp("finished") / "run"
    out = _cli(*ARGS, "resume=auto", f"hydra.run.dir={run}")
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.fixture
def earlier(finished, tmp_path) -> Path:
    """A copy of the finished run, for a test to launch into."""
    return Path(shutil.copytree(finished, tmp_path / "earlier"))


@pytest.fixture(scope="module")
def other_data(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("data")
    (d / "train.csv").write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in ROWS))
    (d / "no_label.csv").write_text("text,category\n" + "".join(f"{t},{lab}\n" for t, lab in ROWS))
    return {"ok": d / "train.csv", "bad": d / "no_label.csv"}


def _held(run: Path, last: bool = True) -> str:
    names = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert any(n.startswith("best-") for n in names) and ("last.ckpt" in names) == last
    return f"metrics.json status ok; checkpoints/{', '.join(names)}; export/"


@pytest.mark.slow
def test_a_fresh_dir_with_resume_auto_starts_a_new_run(finished):
    assert _metrics(finished)["status"] == "ok"
    assert (finished / "checkpoints" / "last.ckpt").is_file() and (finished / "export" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("data", ["ok", "bad"])
def test_a_run_dir_holding_a_run_is_refused_before_anything_is_written(earlier, other_data, data):
    """Other data (whose run would reuse the dir's tokenizer and overwrite the rest) or bad data (whose failure
    would overwrite metrics.json and .hydra/): refused in one line, the earlier run byte for byte as it was."""
    before = _snapshot(earlier)
    out = _cli(
        *ARGS, "data=files", f"data.train={other_data[data]}", "data.label_column=label", f"hydra.run.dir={earlier}"
    )
    assert _one_line(out) == (
        f"error: hydra.run.dir={earlier} holds an earlier run ({_held(earlier)}); choose another hydra.run.dir, "
        "resume=auto to continue it, or overwrite=true to replace it"
    )
    assert _snapshot(earlier) == before


@pytest.mark.slow
def test_the_refused_run_dir_still_evaluates_with_its_own_config(earlier, other_data):
    from transferlab.cli.evaluate import evaluate

    assert _cli(*ARGS, "data=files", f"data.train={other_data['bad']}", f"hydra.run.dir={earlier}").returncode == 2
    (best,) = (earlier / "checkpoints").glob("best-*.ckpt")
    scored = evaluate([f"ckpt_path={best}"])
    assert scored["test/acc"] == pytest.approx(_metrics(earlier)["test/acc"])


@pytest.mark.slow
def test_overwrite_true_replaces_the_earlier_run_and_nothing_of_it_leaks(earlier, other_data):
    (earlier / "tokenizer" / "stale.txt").write_text("the earlier run's tokenizer")
    shutil.copy(earlier / "checkpoints" / "last.ckpt", earlier / "checkpoints" / "best-9-99.ckpt")
    (earlier / "notes.txt").write_text("the user's, not the run's")
    old_tokenizer = (earlier / "tokenizer" / "tokenizer.json").read_bytes()
    out = _cli(
        *ARGS,
        "data=files",
        f"data.train={other_data['ok']}",
        "data.label_column=label",
        "overwrite=true",
        f"hydra.run.dir={earlier}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _metrics(earlier)["status"] == "ok"
    assert not (earlier / "tokenizer" / "stale.txt").exists()
    assert not (earlier / "checkpoints" / "best-9-99.ckpt").exists()
    assert (earlier / "tokenizer" / "tokenizer.json").read_bytes() != old_tokenizer  # trained on the new data
    assert OmegaConf.load(earlier / ".hydra" / "config.yaml").data.train == str(other_data["ok"])
    assert (earlier / "notes.txt").read_text() == "the user's, not the run's"


@pytest.mark.slow
def test_resume_auto_without_last_ckpt_says_what_it_found_and_stops(earlier):
    (earlier / "checkpoints" / "last.ckpt").unlink()
    before = _snapshot(earlier)
    out = _cli(*ARGS, "resume=auto", f"hydra.run.dir={earlier}")
    assert _one_line(out) == (
        f"error: resume=auto: hydra.run.dir={earlier} holds a run ({_held(earlier, last=False)}) but no "
        "checkpoints/last.ckpt to continue; start it over with resume=never overwrite=true, "
        "or choose another hydra.run.dir"
    )
    assert _snapshot(earlier) == before
    # resume=never refuses the dir too: it holds a finished run
    assert "holds an earlier run" in _one_line(_cli(*ARGS, "resume=never", f"hydra.run.dir={earlier}"))
    assert _snapshot(earlier) == before


@pytest.mark.slow
def test_resume_auto_with_a_truncated_last_ckpt_leaves_the_run_as_it_was(earlier):
    last = earlier / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = _snapshot(earlier)
    line = _one_line(_cli(*ARGS, "resume=auto", f"hydra.run.dir={earlier}"))
    assert line.startswith(f"error: resume=auto: {last}: not a readable checkpoint, truncated or corrupt? (")
    assert line.endswith("); start it over with resume=never overwrite=true, or choose another hydra.run.dir")
    assert _snapshot(earlier) == before


@pytest.mark.slow
def test_resume_auto_and_overwrite_true_together_are_refused(earlier):
    before = _snapshot(earlier)
    assert _one_line(_cli(*ARGS, "resume=auto", "overwrite=true", f"hydra.run.dir={earlier}")) == (
        f"error: hydra.run.dir={earlier} holds a run ({_held(earlier)}) that resume=auto continues and overwrite=true "
        "would delete; drop one of the two"
    )
    assert _snapshot(earlier) == before


@pytest.mark.slow
def test_a_finished_run_continued_on_bad_data_keeps_its_metrics_and_config(earlier, other_data):
    """resume=auto passes the gate (last.ckpt is whole), then the data fails: Hydra had rewritten .hydra/ by then;
    the finished run's record is put back and its metrics.json is not replaced by the failure."""
    kept = {k: v for k, v in _snapshot(earlier).items() if k == "metrics.json" or k.startswith(".hydra")}
    out = _cli(
        *ARGS,
        "resume=auto",
        "data=files",
        f"data.train={other_data['bad']}",
        "data.label_column=label",
        f"hydra.run.dir={earlier}",
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and len(lines) == 1 and "has no column 'label'" in lines[0], out.stderr[-3000:]
    assert {k: v for k, v in _snapshot(earlier).items() if k in kept} == kept


@pytest.mark.slow
def test_a_sweep_into_a_sweep_dir_holding_runs_is_refused(finished, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep / "0")
    before = _snapshot(sweep)
    line = _one_line(_cli("-m", *ARGS, "seed=1,2", f"hydra.sweep.dir={sweep}"))
    assert line == (
        f"error: hydra.sweep.dir={sweep} (job dir 0) holds an earlier run ({_held(sweep / '0')}); "
        "choose another hydra.sweep.dir, resume=auto to continue it, or overwrite=true to replace it"
    )
    assert _snapshot(sweep) == before


@pytest.mark.parametrize(
    "contents, held",
    [
        ({"metrics.json": '{"status": "ok"}'}, ["metrics.json status ok"]),
        ({"checkpoints/last.ckpt": "x"}, ["checkpoints/last.ckpt"]),
        ({"export/config.json": "{}"}, ["export/"]),
        (
            {
                "metrics.json": '{"status": "failed", "error": "x"}',
                "tokenizer/vocab.txt": "a",
                ".hydra/config.yaml": "a: 1",
            },
            [],
        ),
        ({}, []),
    ],
)
def test_what_counts_as_a_run_held_in_a_dir(tmp_path, contents, held):
    """A finished record, checkpoints or an export; a failed attempt's record, tokenizer and config are not a run."""
    from transferlab.run.rundir import claim, held_run

    for name, text in contents.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert held_run(tmp_path) == held
    cfg = OmegaConf.create({"resume": "never", "overwrite": False})
    if held:
        with pytest.raises(TransferlabError, match="holds an earlier run"):
            claim(cfg, tmp_path, f"hydra.run.dir={tmp_path}")
    else:
        claim(cfg, tmp_path, f"hydra.run.dir={tmp_path}")  # a new run may use it


def test_at_the_job_resume_auto_refuses_a_run_without_last_ckpt_and_records_nothing(tmp_path):
    """The same rule where the job picks its checkpoint (a sweep's job dir, a dir filled after the launch)."""
    from transferlab.run.preflight import resume_path
    from transferlab.run.rundir import RunDirTaken, record_failure

    (tmp_path / "metrics.json").write_text('{"status": "ok", "test/acc": 0.9}')
    with pytest.raises(RunDirTaken, match=r"holds a run \(metrics.json status ok\) but no checkpoints/last.ckpt") as e:
        resume_path(OmegaConf.create({"resume": "auto"}), tmp_path)
    record_failure(tmp_path, e.value)
    assert (tmp_path / "metrics.json").read_text() == '{"status": "ok", "test/acc": 0.9}'
    assert resume_path(OmegaConf.create({"resume": "auto"}), tmp_path / "new") is None  # a new dir: a new run


def test_overwrite_is_a_validated_config_key():
    from transferlab.cli.front import compose

    assert compose(["overwrite=true"]).overwrite is True and compose([]).overwrite is False
    with pytest.raises(TransferlabError, match=r"^overwrite: expected a bool, got 'maybe'"):
        compose(["overwrite=maybe"])
    plus = r"^'overwrite' is already a key, so '\+' cannot add it; set it without the plus: overwrite=true$"
    with pytest.raises(TransferlabError, match=plus):
        compose(["+overwrite=true"])


@pytest.mark.parametrize(
    "content, problem",
    [
        (
            b"text,label\na cat,animal\n",
            "not a readable checkpoint, truncated or corrupt? (pop from empty list); "
            "give a .ckpt from a run's checkpoints/ (best-*.ckpt or last.ckpt)",
        ),
        (
            None,
            "not a Lightning checkpoint (no state_dict); "
            "to score an export on new data use transferlab-predict EXPORT INPUT",
        ),
    ],
)
def test_eval_checks_its_checkpoint_before_reading_data(tmp_path, monkeypatch, content, problem):
    """A file named .ckpt that is none, in a run dir with a good config: one line, before the data is prepared."""
    from transferlab.cli.evaluate import evaluate
    from transferlab.cli.front import compose
    from transferlab.run import job

    ckpt = tmp_path / "run" / "checkpoints" / "x.ckpt"
    ckpt.parent.mkdir(parents=True)
    if content is None:
        torch.save({"weights": torch.zeros(2)}, ckpt)
    else:
        ckpt.write_bytes(content)
    (tmp_path / "run" / ".hydra").mkdir()
    cfg = compose(["debug=fast"])
    saved = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(saved, tmp_path / "run" / ".hydra" / "config.yaml")
    never = lambda *a, **k: pytest.fail("data was prepared before the checkpoint was checked")  # noqa: E731
    monkeypatch.setattr(job, "assemble", never)
    with pytest.raises(TransferlabError) as e:
        evaluate([f"ckpt_path={ckpt}"])
    assert str(e.value) == f"ckpt_path={ckpt}: {problem}"


def test_the_model_card_command_round_trips_through_a_shell():
    from transferlab.cli.front import compose
    from transferlab.report.card import model_card

    overrides = [
        "data.train=/data/my file.csv",
        "data.text_column=it's",
        'task_name="a b"',
        "seed=1",
        "+trainer.x=$HOME;rm",
    ]
    cfg = compose(["debug=fast"])
    card = model_card(cfg, {"test/acc": 0.5}, {"trainable": 1, "total": 2}, overrides, "AutoModel", None)
    lines = card.splitlines()
    command = lines[lines.index("```bash") + 1]
    assert shlex.split(command) == ["transferlab-train", *overrides]
