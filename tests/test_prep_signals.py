"""Signals while preparing data (issue 24). A lock whose holder died is taken over, even while processes it forked
live on. A run stopped by a signal is recorded as interrupted."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from transferlab.errors import Interrupted


def _env(cache: Path) -> dict:
    return {**os.environ, "TRANSFERLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


LOCK = """
import os, time
from omegaconf import OmegaConf
from transferlab.data.lock import preparing

with preparing(OmegaConf.create({"data": {"train": "t.csv"}, "tokenizer": {"source": "train"}}), print):
"""
HOLD = LOCK + """
    if os.fork() == 0:  # a worker that outlives its parent, as datasets' tokenizer processes did
        time.sleep(120)
        os._exit(0)
    print("holding", flush=True)
    time.sleep(120)
"""
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
        taken = subprocess.run([sys.executable, "-c", TAKE], check=False, capture_output=True, text=True,
                               env=_env(tmp_path), timeout=60)
    finally:
        for process in [psutil.Process(holder.pid), *orphans] if holder.poll() is None else orphans:
            if process.is_running():
                process.kill()
    assert taken.returncode == 0, taken.stderr
    notice = (f"the last preparation of this data (pid {holder.pid} on {socket.gethostname()}) ended before it "
              "finished; preparing it again here")
    assert taken.stdout.splitlines() == [notice, "prepared"]


def test_an_interrupted_run_is_recorded_as_interrupted_not_failed():
    from transferlab.outputs import failure_record

    assert failure_record(Interrupted("interrupted by SIGTERM at step 3; saved x", signal.SIGTERM)) == {
        "status": "interrupted", "error": "Interrupted: interrupted by SIGTERM at step 3; saved x"}
    assert failure_record(KeyboardInterrupt())["status"] == "interrupted"
    assert failure_record(ValueError("bad"))["status"] == "failed"
