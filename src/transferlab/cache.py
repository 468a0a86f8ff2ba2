"""The one cache rule: what names an entry, how it is written, and how it is trusted.

- An entry is named by ``cache_key(...)``: sha256 of one canonical JSON encoding of what it depends on.
- An entry is a directory ``$TRANSFERLAB_CACHE/<kind>/<key>/``, built under a temp name (``.<key>.<host>.<pid>.*``)
  and renamed into place when complete, sealed by ``manifest.json``: each file's size and a checksum.
- ``lookup`` verifies the seal before anything reads the entry: a missing, truncated or altered file is reported in
  one line naming the entry, the entry is discarded and the caller rebuilds it. A cache is never trusted half-written.
- ``atomic_file``/``write_atomic``: the same temp + fsync + rename for single files (metrics.json, checkpoints).

Imports nothing heavy: the preflight uses it.
"""

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from transferlab.config import cache_dir

MANIFEST = "manifest.json"
_WHOLE = 32 << 20  # files up to this size are hashed whole; larger ones by size and sampled chunks
_CHUNK = 1 << 20
_SAMPLES = 8


def cache_key(*parts) -> str:
    """The name of what `parts` (JSON-able, or str()-able) define: the same parts give the same key everywhere."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@contextmanager
def atomic_file(path: Path):
    """An open binary file that becomes `path` on success (temp in the same dir + fsync + rename): a reader sees the
    old file or the whole new one, never half of it. On failure the temp file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # no .ckpt/.json suffix
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> Path:
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def checksum(path: Path) -> str:
    """sha256 of a file: whole up to 32 MiB; beyond, of its size and 8 evenly spaced 1 MiB chunks (first and last
    included), so sealing and verifying a multi-GB prepared split costs milliseconds, and truncation never passes."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= _WHOLE:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
        else:
            for i in range(_SAMPLES):
                f.seek((size - _CHUNK) * i // (_SAMPLES - 1))
                digest.update(f.read(_CHUNK))
    return digest.hexdigest()


def _files(root: Path) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def seal(root: Path) -> None:
    """Write root/manifest.json: every file's relative path, size and checksum."""
    files = {str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": checksum(p)} for p in _files(root)}
    (root / MANIFEST).write_text(json.dumps({"files": files, "v": 1}, indent=1, sort_keys=True) + "\n")


def problem(root: Path) -> str | None:
    """What is wrong with a sealed entry (None: nothing): no seal, a file gone, cut short, changed or added."""
    try:
        files = json.loads((root / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return "no manifest.json: cut short, or written by an older transferlab"
    except (ValueError, KeyError, TypeError):
        return "its manifest.json is unreadable"
    for name, seal_of in sorted(files.items()):
        path = root / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != seal_of["size"]:
            return f"{name} is {path.stat().st_size} bytes, sealed at {seal_of['size']}"
        if checksum(path) != seal_of["sha256"]:
            return f"{name} does not match its checksum"
    extra = [str(p.relative_to(root)) for p in _files(root) if str(p.relative_to(root)) not in files]
    return f"{extra[0]} was added after sealing" if extra else None


def notice(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _discard(path: Path) -> None:
    """Move an entry aside (one rename: a concurrent reader sees it or nothing), then delete it."""
    trash = path.with_name(f".trash.{path.name}.{os.getpid()}")
    try:
        os.rename(path, trash)
    except OSError:  # another process discarded it first
        return
    shutil.rmtree(trash, ignore_errors=True)


def entry_path(kind: str, key: str) -> Path:
    return cache_dir() / kind / key


def lookup(kind: str, key: str) -> Path | None:
    """The verified entry kind/key, or None when it must be built; a damaged one is reported, discarded: None."""
    path = entry_path(kind, key)
    if not path.is_dir():
        if path.exists():  # a file where an entry dir belongs (an older layout): not ours to trust
            notice(f"cache: {path} is not an entry of this transferlab; rebuilding it")
            path.unlink(missing_ok=True)
        return None
    why = problem(path)
    if why is None:
        return path
    notice(f"cache: {path} is damaged ({why}); rebuilding it")
    _discard(path)
    return None


def _remove_leftovers(parent: Path, key: str) -> None:
    """Temp dirs of this key left on this host by a process that is gone (killed midway)."""
    host = socket.gethostname()
    for tmp in parent.glob(f".{key}.{host}.*"):
        try:
            os.kill(int(tmp.name.split(".")[3]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            pass


@contextmanager
def building(kind: str, key: str):
    """Yield a temp dir to fill; on success seal it and rename it to kind/key (when another process got there first,
    its entry is kept and ours dropped). On failure nothing is left behind. The entry's path is `entry_path`."""
    final = entry_path(kind, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(final.parent, key)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}.{socket.gethostname()}.{os.getpid()}."))
    try:
        yield tmp
        seal(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_file(kind: str, key: str, name: str, write) -> Path:
    """A one-file entry: kind/key/name, made by `write(path)` when missing or damaged."""
    found = lookup(kind, key)
    if found is None:
        with building(kind, key) as tmp:
            write(tmp / name)
        found = entry_path(kind, key)
    return found / name
