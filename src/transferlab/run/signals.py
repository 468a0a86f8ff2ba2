"""A clean stop on a signal, in the two phases that take long:
- fit: SIGTERM (and Ctrl+C, made to act like it) lets the current batch finish, saves last.ckpt and exits with a line
  saying how to resume. Lightning's SIGUSR1 handling (SLURM requeue) is left alone.
- preparing data: SIGTERM or Ctrl+C unwinds the preparation as Ctrl+C would (datasets terminates its tokenizer
  processes, data/store.py removes its temp dir, the data lock is let go), any process it started and did not stop
  is stopped, then the run ends with Interrupted. Without this, SIGTERM killed the main process at once and left
  its tokenizer processes running.
Both end in errors.Interrupted: exit status 128 + the signal, one line, metrics.json status: interrupted.
"""

import os
import shlex
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from transferlab.errors import Interrupted


@contextmanager
def sigint_as_sigterm():
    """During fit, Ctrl+C takes SIGTERM's path (finish the batch, save, exit); a second Ctrl+C stops at once."""
    received = []

    def on_sigint(signum, frame):
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


_preparing = False  # a stop_preparing_on_signals block is running in this process


def _leave_signals_to_the_parent():
    """In a process forked during preparation (a tokenizer worker): Ctrl+C at a terminal reaches the whole process
    group, and the parent stops its workers itself (pool.terminate's SIGTERM, which must kill them at once)."""
    global _preparing
    if _preparing:
        _preparing = False
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_leave_signals_to_the_parent)


def _started_children() -> list:
    """The live processes this one started through multiprocessing or its fork, multiprocess (datasets' pools)."""
    return [
        child
        for name in ("multiprocessing", "multiprocess")
        if name in sys.modules
        for child in sys.modules[name].active_children()
    ]


def _stop(children: list) -> None:
    """An interrupt can land between a library's fork and its cleanup (datasets' pool manager, started but not yet
    known to the code that would shut it down): such a process would serve on and the exit would wait for it."""
    for child in children:
        child.terminate()  # SIGTERM, which kills it: see _leave_signals_to_the_parent
    for child in children:
        child.join(timeout=5)
        if child.exitcode is None:
            child.kill()
            child.join(timeout=5)


@contextmanager
def stop_preparing_on_signals():
    """SIGTERM or Ctrl+C inside the block raises KeyboardInterrupt there, so every finally and `except BaseException`
    on the way out cleans up; the block then ends with Interrupted, whatever the exception that came out (datasets
    replaces a KeyboardInterrupt in its worker pool by a TimeoutError). A second signal acts at once."""
    global _preparing
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    received = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for s, handler in previous.items():
            signal.signal(s, handler)

    def on_signal(signum, frame):
        received.append(signum)
        restore()
        raise KeyboardInterrupt

    before = {child.pid for child in _started_children()}
    for s in previous:
        signal.signal(s, on_signal)
    _preparing = True
    try:
        yield
    except BaseException:
        if not received:
            raise
    finally:
        restore()
        _preparing = False
    if received:  # also when the exception was swallowed on the way out
        _stop([child for child in _started_children() if child.pid not in before])
        name = signal.Signals(received[0]).name
        raise Interrupted(
            f"interrupted by {name} while preparing the data; run again to prepare it (nothing half-written is kept)",
            received[0],
        )


def resume_command(overrides: list, run_dir: Path) -> str:
    """The command that continues this run: the same overrides, this run dir, resume=auto."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.run.dir=", "resume="))]
    return shlex.join(["transferlab-train", *kept, f"hydra.run.dir={run_dir}", "resume=auto"])


def interrupted(signals: list, last, overrides: list, run_dir: Path) -> Interrupted:
    """The error a stopped run ends with; `last` is the run's checkpoints.LastCheckpoint (None: checkpoints off)."""
    signum = signals[0] if signals else signal.SIGTERM
    name = signal.Signals(signum).name
    if last is None:
        return Interrupted(f"interrupted by {name}; nothing saved (callbacks.checkpoint.enabled=false)", signum)
    if last.saved_step is None and not last.path.is_file():
        return Interrupted(f"interrupted by {name} before any checkpoint was saved; start again to train", signum)
    at = f" at step {last.saved_step}" if last.saved_step is not None else ""
    return Interrupted(
        f"interrupted by {name}{at}; saved {last.path}; resume with: {resume_command(overrides, run_dir)}", signum
    )
