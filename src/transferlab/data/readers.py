"""File formats: which format a file is read as, and transferlab's own readers (CSV/TSV as text, CoNLL, SQuAD).

A reader yields one row per example; datasets writes them to Arrow as the file is read (a large file is never held
whole), under $TRANSFERLAB_CACHE. Imports nothing heavy: the config check uses the suffix table.
"""

from pathlib import Path

from transferlab.errors import TransferlabError

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".txt": "text",
    ".conll": "conll",
}
READERS = {
    "csv": "transferlab.data.tabular:read_csv",
    "conll": "transferlab.data.conll:read_conll",
    "squad": "transferlab.data.squad:read_squad",
    "messages": "transferlab.data.chat:read_messages",
    "alpaca": "transferlab.data.chat:read_alpaca",
    "sharegpt": "transferlab.data.chat:read_sharegpt",
}  # imported when used
FORMATS = tuple(READERS)


def suffix(path) -> str:
    """The suffix that names a file's format, lower-cased, .gz aside ('' when it has none)."""
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes else ""


def file_format(path, fmt: str = "auto") -> str:
    """data.format, or the format the file's extension names when it is auto."""
    if fmt != "auto":
        return fmt
    found = SUFFIXES.get(suffix(path))
    if found is None:
        raise TransferlabError(
            f"{path}: unsupported file type '{Path(path).name}'; use one of {', '.join(SUFFIXES)} "
            "(optionally .gz), or set data.format=csv|json|parquet|text|conll"
        )
    return found


def file_identity(path) -> list:
    """What names a local file for caches: its resolved path, size, modification time and a hash of its first and
    last 64 KiB (an edit that keeps the size and the time is still caught, without reading gigabytes)."""
    import hashlib

    resolved = Path(path).resolve()
    stat = resolved.stat()
    digest = hashlib.sha256()
    with open(resolved, "rb") as f:
        digest.update(f.read(_EDGE))
        if stat.st_size > _EDGE:
            f.seek(max(_EDGE, stat.st_size - _EDGE))
            digest.update(f.read(_EDGE))
    return [str(resolved), stat.st_size, stat.st_mtime_ns, digest.hexdigest()[:16]]


_EDGE = 64 << 10


def decode_error(path: Path) -> TransferlabError:
    """The error for a file that is not UTF-8, naming the first bad byte's offset (read again, whole: an error path)."""
    import gzip

    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return TransferlabError(
            f"{path}: invalid UTF-8 at byte offset {e.start}; fix the file, or set data.encoding_errors=replace "
            "to decode bad bytes as U+FFFD"
        )
    return TransferlabError(f"{path}: could not be decoded as UTF-8")


def _generate(path: str, identity: str, rows, options: dict):
    yield from rows(path, **options)


def from_rows(rows, features, path, **options):
    """datasets.Dataset from the generator `rows(path, **options)`; a TransferlabError it raised (a malformed line)
    comes through as itself, not wrapped by datasets. The file's identity is part of what datasets hashes, so its
    cached Arrow copy (under $TRANSFERLAB_CACHE/datasets) is never reused for an edited file."""
    from datasets import Dataset

    from transferlab.cache import cache_key
    from transferlab.config import cache_dir

    kwargs = {"path": str(path), "identity": cache_key(file_identity(path)), "rows": rows, "options": options}
    try:
        return Dataset.from_generator(
            _generate, features=features, gen_kwargs=kwargs, cache_dir=str(cache_dir() / "datasets")
        )
    except Exception as e:
        if "corresponds to no data" in str(e):  # datasets' words for a reader that yielded no row
            raise TransferlabError(
                f"{path} has no examples (a header alone?); give a file with at least one example"
            ) from None
        cause = e
        while cause is not None and not isinstance(cause, TransferlabError):
            cause = cause.__cause__ or cause.__context__
        raise (cause or e) from None


def read(fmt: str, path, **options):
    """The file read by transferlab's reader of `fmt`."""
    import importlib

    module, name = READERS[fmt].split(":")
    return getattr(importlib.import_module(module), name)(path, **options)
