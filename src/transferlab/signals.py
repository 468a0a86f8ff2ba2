"""A clean stop on a signal: SIGTERM (and Ctrl+C, made to act like it) lets the current batch finish, saves
last.ckpt and exits with a line saying how to resume. Lightning's SIGUSR1 handling (SLURM requeue) is left alone."""

import os
import shlex
import signal
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
    return Interrupted(f"interrupted by {name}{at}; saved {last.path}; resume with: {resume_command(overrides, run_dir)}", signum)
