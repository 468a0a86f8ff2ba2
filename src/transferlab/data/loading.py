"""Load the raw splits (local files or a hub dataset), check them, and cut them to size.

Bad input fails here, before any tokenization, with one line naming the file and the fix. A local file that passed
once (the same file, read the same way, for the same objective and columns) is not read again to be checked: it
comes deferred, and a run whose prepared splits are all in the cache never opens it.
"""

import hashlib
import json
from pathlib import Path
from typing import Dict

from transferlab.config import cache_dir
from transferlab.data.missing import complement, missing_rows
from transferlab.data.readers import FORMATS as READER_FORMATS, read
from transferlab.data.splits import cut_splits
from transferlab.errors import TransferlabError

SPLITS = ("train", "validation", "test")
_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text",
            ".conll": "conll"}


def _format(path: Path, fmt: str = "auto") -> str:
    """data.format, or the file's extension (.gz aside) when it is auto."""
    if fmt != "auto":
        return fmt
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return _FORMATS[suffixes[-1].lower()]


def file_identity(path) -> list:
    """What names a local file for caches: its resolved path, size and modification time (not its content, which
    would mean reading gigabytes)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return [str(resolved), stat.st_size, stat.st_mtime_ns]


def _read_text(path: Path) -> str:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TransferlabError(
            f"{path}: invalid UTF-8 at byte offset {e.start}; fix the file, or set data.encoding_errors=replace "
            "to decode bad bytes as U+FFFD"
        ) from None


def _diagnose(path: Path, fmt: str, error: Exception) -> TransferlabError:
    """Turn a loader failure into the precise problem: bad bytes, a malformed JSON line, or an empty file."""
    if fmt in ("json", "text", "csv"):
        text = _read_text(path)  # raises with the byte offset if the file is not UTF-8
        if not text.strip():
            return TransferlabError(f"{path}: the file is empty; give a file with at least one example")
        if fmt == "json" and not text.lstrip().startswith("["):
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        json.loads(line)
                    except ValueError as e:
                        return TransferlabError(f"{path}:{number}: malformed JSON line ({e.msg}); fix or remove that line")
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return TransferlabError(f"{path}: could not read it as {fmt} ({first})")


def _sanitized_copy(path: Path, cache_dir: Path) -> Path:
    """data.encoding_errors=replace: a UTF-8 copy of the file with undecodable bytes as U+FFFD."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    out = cache_dir / f"{digest}{''.join(s for s in path.suffixes if s != '.gz')}"
    if not out.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        out.write_text(raw.decode("utf-8", errors="replace"), encoding="utf-8")
    return out


def _existing(path_str: str, split: str) -> Path:
    path = Path(path_str)
    if not path.is_file():
        raise TransferlabError(f"data.{split}: file not found: {path}")
    if path.stat().st_size == 0:
        raise TransferlabError(f"data.{split}: {path} is empty; give a file with at least one example")
    return path


def _load_file(path_str: str, split: str, encoding_errors: str, fmt: str = "auto"):
    from datasets import load_dataset

    path = _existing(path_str, split)
    fmt = _format(path, fmt)
    if encoding_errors == "replace" and fmt != "parquet":
        path = _sanitized_copy(path, cache_dir() / "utf8")
    kwargs = {"delimiter": "\t"} if path.name.endswith((".tsv", ".tsv.gz")) else {}
    if fmt in READER_FORMATS:
        ds = read(fmt, path)
    else:
        try:
            ds = load_dataset(fmt, data_files={split: str(path)}, split=split, **kwargs)
        except Exception as e:  # datasets raises many types; name the real problem instead
            raise _diagnose(Path(path_str), fmt, e) from e
    # Named by the file (path, size, mtime) and how it is read, not by how datasets happened to write its Arrow copy:
    # every process that loads this file then agrees, and finds what the first one prepared.
    identity = [*file_identity(path_str), fmt, kwargs, encoding_errors, split, 1]
    ds._fingerprint = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
    if fmt == "text":  # one text per line: a blank line separates paragraphs, it is not a missing value
        blank = missing_rows(ds, "text")
        ds = ds.select(complement(blank, len(ds))) if len(blank) else ds
    if len(ds) == 0:
        raise TransferlabError(f"data.{split}: {path_str} has no examples; give a file with at least one example")
    return ds


def _load_hub(data_cfg) -> Dict[str, object]:
    from datasets import load_dataset

    from transferlab.hub import offline_note

    try:
        full = load_dataset(data_cfg.path, data_cfg.config_name)
    except Exception as e:
        raise TransferlabError(
            f"data.path={data_cfg.path}: could not load this hub dataset ({offline_note('datasets')}; "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the id and your network or HF cache"
        ) from None
    out = {}
    for split in SPLITS:
        name = data_cfg[split]
        if name is not None and name in full:
            out[split] = full[name]
        elif name is not None and split == "train":
            raise TransferlabError(f"data.train={name}: no such split in {data_cfg.path}; splits found: {', '.join(full)}")
    return out


def _where(data_cfg, split: str) -> str:
    return data_cfg[split] if data_cfg.source == "files" else data_cfg.path


def _check_columns(ds, split: str, data_cfg, fields: Dict[str, str]) -> None:
    for key in fields.values():
        column = data_cfg[key]
        if column not in ds.column_names:
            raise TransferlabError(
                f"data.{split} ({_where(data_cfg, split)}) has no column '{column}'; columns found: "
                f"{', '.join(ds.column_names)}; set data.{key}=<one of them>"
            )


def _rows_named(data_cfg, split: str, rows) -> str:
    """Rows as a user finds them: file lines for text formats (a CSV's header is line 1), else example numbers."""
    path = str(data_cfg[split]) if data_cfg.source == "files" else ""
    fmt = _format(Path(path), data_cfg.format) if path else None
    offset = {"csv": 2, "json": 1, "text": 1}.get(fmt)
    unit = "line" if offset else "example"
    numbers = [int(i) + (offset or 1) for i in rows[:5]]
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"{unit}{'s' if len(rows) > 1 else ''} {', '.join(map(str, numbers))}{more}"


def _handle_missing(ds, split: str, data_cfg, fields: Dict[str, str]):
    """data.missing=error: fail naming the file and rows; drop: keep the complete rows. Returns (ds, dropped)."""
    found = {data_cfg[key]: missing_rows(ds, data_cfg[key]) for key in fields.values()}
    found = {column: rows for column, rows in found.items() if len(rows)}
    if found and data_cfg.missing == "error":
        where = "; ".join(f"'{column}' at {_rows_named(data_cfg, split, rows)}" for column, rows in found.items())
        raise TransferlabError(
            f"data.{split} ({_where(data_cfg, split)}) has empty values: {where}; fill them in, or set data.missing=drop "
            "to drop such rows"
        )
    if not found:
        return ds, 0
    import numpy as np

    keep = complement(np.concatenate(list(found.values())), len(ds))
    if not len(keep):
        raise TransferlabError(f"data.{split} ({_where(data_cfg, split)}): every row has a missing value; nothing is left to use")
    return ds.select(keep), len(ds) - len(keep)


def _label_names(ds, columns: list):
    """Class-label columns (a hub dataset's ClassLabel, or a sequence of them as conll2003's ner_tags) as their names:
    objectives read labels and tags as strings."""
    from datasets import ClassLabel, Value

    for column in columns:
        feature = ds.features[column]
        inner = getattr(feature, "feature", None)
        if isinstance(feature, ClassLabel):
            names, kind = feature.names, Value("string")
            fn = lambda b, c=column, n=names: {c: [n[i] for i in b[c]]}  # noqa: E731
        elif isinstance(inner, ClassLabel):
            names, kind = inner.names, type(feature)(Value("string"))
            fn = lambda b, c=column, n=names: {c: [[n[i] for i in row] for row in b[c]]}  # noqa: E731
        else:
            continue
        features = ds.features.copy()
        features[column] = kind
        ds = ds.map(fn, batched=True, features=features, desc=f"{column}: label names")
    return ds


def _checked(ds, split: str, data_cfg, objective):
    """A raw split in the objective's layout, its columns and missing values checked, reduced to its fields (renamed
    to their names) and its rows checked: (ds, rows dropped for a missing value)."""
    fields = objective.fields
    ds = objective.reshape(ds, data_cfg)
    _check_columns(ds, split, data_cfg, fields)
    ds, dropped = _handle_missing(ds, split, data_cfg, fields)
    ds = _label_names(ds.select_columns([data_cfg[key] for key in fields.values()]), [data_cfg[key] for key in fields.values()])
    ds = ds.rename_columns({data_cfg[key]: field for field, key in fields.items() if data_cfg[key] != field})
    # rows as the file holds them (before any carve), so a bad one is named by its line
    objective.check_rows(ds, lambda i: f"data.{split} ({_where(data_cfg, split)}) {_rows_named(data_cfg, split, [i])}")
    return ds, dropped


def _checked_file(data_cfg, split: str, objective):
    """A file split, read and checked as `_checked` does, named by what decides the outcome: the file's identity,
    how it is read, the objective and the columns it reads. The first run records that it passed (and what it
    dropped) under $TRANSFERLAB_CACHE/checked/; a later run gets the split Deferred, opened only if a prepared split
    it feeds is missing from the cache. A run on a prepared corpus opens no byte of its text."""
    from transferlab.data.deferred import Deferred
    from transferlab.outputs import _write_atomic

    path = _existing(data_cfg[split], split)  # a file gone since (or emptied) fails now, record or not
    columns = {field: data_cfg[key] for field, key in objective.fields.items()}
    named = [file_identity(path), _format(path, data_cfg.format), data_cfg.encoding_errors, split, objective.name, columns,
             data_cfg.missing, 1]
    key = hashlib.sha256(json.dumps(named).encode()).hexdigest()[:32]

    def make():
        ds, dropped = _checked(_load_file(data_cfg[split], split, data_cfg.encoding_errors, data_cfg.format), split, data_cfg, objective)
        ds._fingerprint = key
        return ds, dropped

    record = cache_dir() / "checked" / f"{key}.json"
    if record.is_file():
        return Deferred(lambda: make()[0], key), json.loads(record.read_text())["dropped"]
    ds, dropped = make()
    _write_atomic(record, json.dumps({"split": split, "file": str(path), "dropped": dropped}))
    return ds, dropped


def load_splits(data_cfg, objective):
    """train/validation/test as datasets.Dataset with one column per field of the objective (class) (field -> the
    data.* key naming its column), cut to the configured size, and the number of rows dropped per split for a
    missing value. Local files that an earlier run checked come Deferred (`_checked_file`). data.streaming=true:
    datasets.IterableDataset streams instead (data/streaming.py)."""
    if data_cfg.streaming:
        from transferlab.data.streaming import load_streams

        return load_streams(data_cfg, objective.fields), {}
    if data_cfg.source == "hub":
        checked = {split: _checked(ds, split, data_cfg, objective) for split, ds in _load_hub(data_cfg).items()}
    else:
        checked = {split: _checked_file(data_cfg, split, objective) for split in SPLITS if data_cfg[split] is not None}
    raw = {split: ds for split, (ds, _) in checked.items()}
    dropped = {split: n for split, (_, n) in checked.items() if n}
    return cut_splits(raw, data_cfg, objective.stratify), dropped
