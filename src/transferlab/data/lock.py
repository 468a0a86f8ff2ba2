"""One preparation per dataset, however many processes start at once.

Under DDP on SLURM or torchrun every rank starts together, on one machine or many sharing a filesystem. Each takes
an exclusive file lock named by the data and tokenizer settings before it trains a tokenizer or prepares splits:
the first (usually rank 0) does the work while the others wait, then each finds the tokenizer and the prepared
splits in the cache and memory-maps the same files. No rank tokenizes twice. Runs on other data use other locks.
(Lightning's own launcher, trainer=ddp_cpu or ddp, starts the other ranks only after rank 0 has prepared.)

The lock is a POSIX record lock (fcntl.lockf), not flock. A record lock belongs to the process that took it: the
processes it forks (datasets' tokenizer workers) do not hold it, and it is let go the moment that process ends,
however it ends. A flock belongs to the open file, which forked workers share: workers left running by a killed
run kept it, and every later run on that data waited forever. (Two holders in one process do not exclude each other;
one process prepares one thing at a time.) The holder writes its pid and host into the lock file and clears them
when it lets go, so the next holder that still finds them knows the last preparation died midway and says so; what
that one left half-written is never trusted (data/store.py).
"""

import os
import socket
import time
from contextlib import contextmanager

from transferlab.errors import TransferlabError


def _acquire(fd: int, say, path) -> None:
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held by another process
        if say:
            say(f"another process is preparing this data; waiting for it (lock {path})")
        fcntl.lockf(fd, fcntl.LOCK_EX)


@contextmanager
def preparing(cfg, say=None):
    """Hold the lock for cfg's data while the block runs; yields a record of the time waited and spent."""
    import fcntl

    from omegaconf import OmegaConf

    from transferlab.cache import cache_key
    from transferlab.config import cache_dir
    from transferlab.data import store

    spec = OmegaConf.to_container(cfg.data, resolve=True), OmegaConf.to_container(cfg.tokenizer, resolve=True)
    path = cache_dir() / "locks" / f"{cache_key(spec)}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)  # lockf needs it open for writing
    except OSError as e:
        raise TransferlabError(
            f"cannot write under {path.parent} ({e.strerror or e}); set TRANSFERLAB_CACHE to a writable dir"
        ) from None
    record = {"waited_s": 0.0, "seconds": 0.0, "written": []}
    try:
        start = time.perf_counter()
        _acquire(fd, say, path)
        ready = time.perf_counter()
        holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
        if holder and say:
            say(f"the last preparation of this data ({holder}) ended before it finished; preparing it again here")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        written_before = len(store.written)
        try:
            yield record
        finally:
            record.update(
                waited_s=ready - start, seconds=time.perf_counter() - ready, written=store.written[written_before:]
            )
            os.ftruncate(fd, 0)
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
