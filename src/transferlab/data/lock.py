"""One preparation per dataset, however many processes start at once.

Under DDP on SLURM or torchrun every rank starts together, on one machine or many sharing a filesystem. Each takes
an exclusive file lock named by the data and tokenizer settings before it trains a tokenizer or prepares splits:
the first (usually rank 0) does the work while the others wait, then each finds the tokenizer and the prepared
splits in the cache and memory-maps the same files. No rank tokenizes twice. Runs on other data use other locks.
(Lightning's own launcher, trainer=ddp_cpu or ddp, starts the other ranks only after rank 0 has prepared.)
"""

import time
from contextlib import contextmanager

from transferlab.errors import TransferlabError


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
        handle = open(path, "a")
    except OSError as e:
        raise TransferlabError(f"cannot write under {path.parent} ({e.strerror or e}); set TRANSFERLAB_CACHE to a writable dir") from None
    record = {"waited_s": 0.0, "seconds": 0.0, "written": []}
    with handle:
        start = time.perf_counter()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say:
                say(f"another process is preparing this data; waiting for it (lock {path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        ready = time.perf_counter()
        written_before = len(store.written)
        try:
            yield record
        finally:
            record.update(waited_s=ready - start, seconds=time.perf_counter() - ready, written=store.written[written_before:])
            fcntl.flock(handle, fcntl.LOCK_UN)
