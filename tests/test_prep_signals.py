"""Signals while preparing data (issue 24): SIGTERM or Ctrl+C during multi-process tokenization stops the tokenizer
processes, lets go of the data lock, leaves no temp dir in the cache, exits 128 + the signal with one line and records
status: interrupted; the next run on the same data prepares it. A lock whose holder died is taken over, even while
processes it forked live on."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from transferlab.errors import Interrupted

CLI = [sys.executable, "-m", "transferlab.train"]
PREPARING = "interrupted by {} while preparing the data; run again to prepare it (nothing half-written is kept)"


def _env(cache: Path) -> dict:
    return {**os.environ, "TRANSFERLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """40,000 short lines: train keeps 32,400 of them, enough for data.num_proc=2 to tokenize in 2 processes."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    path = tmp_path_factory.mktemp("corpus") / "train.txt"
    path.write_text("".join(" ".join(rng.choices(words, k=6)) + "\n" for _ in range(40_000)))
    return path


def _args(corpus: Path, run: Path) -> list:
    return [
        *CLI,
        "model=tiny_bert",
        "objective=mlm",
        "data=files",
        f"data.train={corpus}",
        "tokenizer=train",
        "debug=fast",
        "data.max_train_samples=null",
        "data.num_proc=2",
        "callbacks.progress_bar=false",
        f"hydra.run.dir={run}",
    ]


def _leftovers(cache: Path) -> list:
    """Temp dirs of a preparation (prepared/.<key>.<host>.<pid>.*, its scratch Arrow) or any other temp file. The
    file's own Arrow copy (cache/datasets, written whole by datasets before tokenizing starts) is a cache entry."""
    copies = cache / "datasets"
    return [
        p
        for p in cache.rglob("*")
        if p.name.startswith(".") or "scratch" in p.parts or (p.suffix == ".arrow" and copies not in p.parents)
    ]


def _start_tokenizing(corpus: Path, cache: Path, run: Path):
    """The run in its own session (a signal to its group reaches no one else), once it tokenizes in worker processes:
    the process, its descendants (2 workers and datasets' queue manager) and its log."""
    log = run.parent / f"{run.name}.log"
    p = subprocess.Popen(
        _args(corpus, run), stdout=log.open("w"), stderr=subprocess.STDOUT, env=_env(cache), start_new_session=True
    )
    main = psutil.Process(p.pid)
    deadline = time.monotonic() + 180
    while True:
        assert p.poll() is None, f"the run ended before tokenizing: {p.returncode}\n{log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "no tokenizer processes within 180 s"
        children = main.children(recursive=True)
        # a worker writes its shard: the pool and its manager have started (a signal at the very fork is another
        # matter: Python drops an exception raised in an at-fork hook, so that run prepares to the end)
        if len(children) >= 3 and list((cache / "prepared").glob(".*/scratch/*")):
            return p, children, log
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("sig, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "ctrl_c"])
def test_a_signal_while_tokenizing_in_processes_stops_them_cleans_up_and_the_next_run_prepares(
    corpus, tmp_path, sig, to_group
):
    cache, run = tmp_path / "cache", tmp_path / "run"
    p, children, log = _start_tokenizing(corpus, cache, run)
    try:
        # SIGTERM as a scheduler sends it, to the main process; Ctrl+C as a terminal sends it, to the process group
        os.killpg(p.pid, sig) if to_group else p.send_signal(sig)
        assert p.wait(timeout=60) == 128 + sig
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []  # no tokenizer process outlives the run (they held the data lock)
    finally:
        for child in children:  # the ones this test started, should the run have left them
            if child.is_running():
                child.kill()
        if p.poll() is None:
            p.kill()
    output = log.read_text()
    name = signal.Signals(sig).name
    assert [line for line in output.splitlines() if line.startswith("error")] == [f"error: {PREPARING.format(name)}"]
    assert output.strip().splitlines()[-1] == f"error: {PREPARING.format(name)}" and "Traceback" not in output
    assert json.loads((run / "metrics.json").read_text()) == {
        "status": "interrupted",
        "error": f"Interrupted: {PREPARING.format(name)}",
    }
    assert _leftovers(cache) == []

    again = tmp_path / "again"
    args = [*_args(corpus, again), "trainer.max_steps=1", "test=false", "export=false"]
    done = subprocess.run(args, check=False, capture_output=True, text=True, env=_env(cache), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tokenize (num_proc=2)" in done.stderr  # nothing half-written was kept: it prepares the data anew
    assert "waiting for it" not in done.stderr and "ended before it finished" not in done.stderr
    assert json.loads((again / "metrics.json").read_text())["status"] == "ok"
    assert _leftovers(cache) == []


LOCK = """
import os, time
from omegaconf import OmegaConf
from transferlab.data.lock import preparing

with preparing(OmegaConf.create({"data": {"train": "t.csv"}, "tokenizer": {"source": "train"}}), print):
"""
HOLD = (
    LOCK
    + """
    if os.fork() == 0:  # a worker that outlives its parent, as datasets' tokenizer processes did
        time.sleep(120)
        os._exit(0)
    print("holding", flush=True)
    time.sleep(120)
"""
)
TAKE = LOCK + "    print('prepared')\n"


def test_a_lock_whose_holder_died_is_taken_over_while_the_holders_children_live(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=_env(tmp_path))
    orphans = []
    try:
        assert holder.stdout.readline() == "holding\n"
        orphans = psutil.Process(holder.pid).children()
        assert len(orphans) == 1
        holder.kill()  # SIGKILL: no finally of the holder runs; its child keeps every descriptor it inherited
        holder.wait(timeout=10)
        taken = subprocess.run(
            [sys.executable, "-c", TAKE], check=False, capture_output=True, text=True, env=_env(tmp_path), timeout=60
        )
    finally:
        for process in [psutil.Process(holder.pid), *orphans] if holder.poll() is None else orphans:
            if process.is_running():
                process.kill()
    assert taken.returncode == 0, taken.stderr
    notice = (
        f"the last preparation of this data (pid {holder.pid} on {socket.gethostname()}) ended before it "
        "finished; preparing it again here"
    )
    assert taken.stdout.splitlines() == [notice, "prepared"]


def test_a_signal_while_preparing_ends_in_interrupted_whatever_comes_out_of_the_block():
    from transferlab.run.signals import stop_preparing_on_signals

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as raised, stop_preparing_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        finally:
            raise TimeoutError  # what datasets' worker pool raises in its own finally, hiding the interrupt
    assert str(raised.value) == PREPARING.format("SIGTERM") and raised.value.exit_code == 128 + signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    with pytest.raises(ValueError), stop_preparing_on_signals():  # without a signal an error is left as it is
        raise ValueError


def test_an_interrupted_run_is_recorded_as_interrupted_not_failed():
    from transferlab.run.outputs import failure_record

    assert failure_record(Interrupted("interrupted by SIGTERM at step 3; saved x", signal.SIGTERM)) == {
        "status": "interrupted",
        "error": "Interrupted: interrupted by SIGTERM at step 3; saved x",
    }
    assert failure_record(KeyboardInterrupt())["status"] == "interrupted"
    assert failure_record(ValueError("bad"))["status"] == "failed"
