"""Load the raw splits (local files or a hub dataset), check them, and cut them to size.

Bad input fails here, before any tokenization, with one line naming the file and the fix. A local file that passed
once (the same file, read the same way, for the same objective and columns) is not read again to be checked: it
comes deferred, and a run whose prepared splits are all in the cache never opens it.
"""

from pathlib import Path
from typing import Dict

from transferlab.cache import building, cache_key, lookup
from transferlab.config import cache_dir
from transferlab.data.files import existing_file, read_file
from transferlab.data.missing import complement, missing_rows
from transferlab.data.readers import file_format, file_identity
from transferlab.data.splits import carve_splits, size_splits
from transferlab.data.tabular import LINE
from transferlab.errors import TransferlabError
from transferlab.objectives.base import read_fields

SPLITS = ("train", "validation", "test")


def _load_hub(data_cfg) -> Dict[str, object]:
    from datasets import load_dataset

    from transferlab.models.hub import offline_note

    try:
        full = load_dataset(data_cfg.path, data_cfg.config_name, cache_dir=str(cache_dir() / "datasets"))
    except Exception as e:
        raise TransferlabError(
            f"data.path={data_cfg.path}: could not load this hub dataset ({offline_note('datasets')}; "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "check the id and your network or HF cache"
        ) from None
    out = {}
    for split in SPLITS:
        name = data_cfg[split]
        if name is not None and name in full:
            out[split] = full[name]
        elif name is not None and split == "train":
            raise TransferlabError(
                f"data.train={name}: no such split in {data_cfg.path}; splits found: {', '.join(full)}"
            )
    return out


def _where(data_cfg, split: str) -> str:
    return data_cfg[split] if data_cfg.source == "files" else data_cfg.path


def _check_columns(ds, split: str, data_cfg, fields: Dict[str, str]) -> None:
    for key in fields.values():
        column = data_cfg[key]
        if column not in ds.column_names:
            found = [c for c in ds.column_names if c != LINE]
            padded = [c for c in found if c.strip() == column]
            hint = (
                f"; the header's '{padded[0]}' has spaces around it: "
                f"rename it in the file, or set data.{key}='{padded[0]}'"
                if padded
                else ""
            )
            raise TransferlabError(
                f"data.{split} ({_where(data_cfg, split)}) has no column '{column}'; columns found: "
                f"{', '.join(repr(c) for c in found)}; set data.{key}=<one of them>{hint}"
            )


def _rows_named(data_cfg, split: str, rows, ds=None) -> str:
    """Rows as a user finds them: file lines for text formats (CSV/TSV rows by the line they start on), else
    example numbers."""
    if ds is not None and LINE in ds.column_names:
        lines = ds.select(rows[:5])[LINE]
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        return f"line{'s' if len(rows) > 1 else ''} {', '.join(map(str, lines))}{more}"
    path = str(data_cfg[split]) if data_cfg.source == "files" else ""
    fmt = file_format(Path(path), data_cfg.format) if path else None
    offset = {"json": 1, "text": 1}.get(fmt)
    unit = "line" if offset else "example"
    numbers = [int(i) + (offset or 1) for i in rows[:5]]
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"{unit}{'s' if len(rows) > 1 else ''} {', '.join(map(str, numbers))}{more}"


def _handle_missing(ds, split: str, data_cfg, fields: Dict[str, str]):
    """data.missing=error: fail naming the file and rows; drop: keep the complete rows. Returns (ds, dropped)."""
    found = {data_cfg[key]: missing_rows(ds, data_cfg[key]) for key in fields.values()}
    found = {column: rows for column, rows in found.items() if len(rows)}
    if found and data_cfg.missing == "error":
        where = "; ".join(f"'{column}' at {_rows_named(data_cfg, split, rows, ds)}" for column, rows in found.items())
        raise TransferlabError(
            f"data.{split} ({_where(data_cfg, split)}) has empty values: {where}; "
            "fill them in, or set data.missing=drop "
            "to drop such rows"
        )
    if not found:
        return ds, 0
    import numpy as np

    keep = complement(np.concatenate(list(found.values())), len(ds))
    if not len(keep):
        raise TransferlabError(
            f"data.{split} ({_where(data_cfg, split)}): every row has a missing value; nothing is left to use"
        )
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
    fields = read_fields(objective.fields, data_cfg)
    ds = objective.reshape(ds, data_cfg)
    _check_columns(ds, split, data_cfg, fields)
    required = {field: key for field, key in fields.items() if field not in objective.optional}
    ds, dropped = _handle_missing(ds, split, data_cfg, required)
    columns = [data_cfg[key] for key in fields.values()]
    ds = _label_names(ds.select_columns(columns + ([LINE] if LINE in ds.column_names else [])), columns)
    ds = ds.rename_columns({data_cfg[key]: field for field, key in fields.items() if data_cfg[key] != field})
    # rows as the file holds them (before any carve), so a bad one is named by its line
    objective.check_rows(
        ds, lambda i: f"data.{split} ({_where(data_cfg, split)}) {_rows_named(data_cfg, split, [i], ds)}"
    )
    return (ds.remove_columns(LINE) if LINE in ds.column_names else ds), dropped


def _read_split(data_cfg, split: str):
    return read_file(
        data_cfg[split],
        split,
        data_cfg.encoding_errors,
        data_cfg.format,
        data_cfg.quoting,
        data_cfg.na_values,
        lines=True,
    )


def _checked_file(data_cfg, split: str, objective):
    """A file split, read and checked as `_checked` does, named by what decides the outcome: the file's identity,
    how it is read, the objective and the columns it reads. The first run records that it passed (and what it
    dropped) under $TRANSFERLAB_CACHE/checked/; a later run gets the split Deferred, opened only if a prepared split
    it feeds is missing from the cache. A run on a prepared corpus opens no byte of its text."""
    import json

    from transferlab.data.deferred import Deferred

    path = existing_file(data_cfg[split], split)  # a file gone since (or emptied) fails now, record or not
    columns = {field: data_cfg[key] for field, key in read_fields(objective.fields, data_cfg).items()}
    key = cache_key(
        file_identity(path),
        file_format(path, data_cfg.format),
        data_cfg.encoding_errors,
        data_cfg.quoting,
        list(data_cfg.na_values),
        split,
        objective.name,
        columns,
        data_cfg.missing,
        {key: data_cfg.get(key) for key in objective.reads},  # how the objective reads its cells
        2,
    )

    def make():
        ds, dropped = _checked(_read_split(data_cfg, split), split, data_cfg, objective)
        ds._fingerprint = key
        return ds, dropped

    found = lookup("checked", key)
    if found is not None:
        return Deferred(lambda: make()[0], key), json.loads((found / "record.json").read_text())["dropped"]
    ds, dropped = make()
    with building("checked", key) as tmp:
        (tmp / "record.json").write_text(json.dumps({"split": split, "file": str(path), "dropped": dropped}))
    return ds, dropped


def load_splits(data_cfg, objective):
    """train/validation/test as datasets.Dataset with one column per field of the objective (class) (field -> the
    data.* key naming its column), cut to the configured size, and the number of rows dropped per split for a
    missing value. Local files that an earlier run checked come Deferred (`_checked_file`). data.streaming=true:
    datasets.IterableDataset streams instead (data/streaming.py)."""
    if data_cfg.streaming:
        from transferlab.data.streaming import load_streams

        return load_streams(data_cfg, read_fields(objective.fields, data_cfg)), {}
    task, dropped = load_task(data_cfg, objective)
    return size_splits(task, data_cfg, objective.stratify), dropped


def load_task(data_cfg, objective):
    """The task's splits as `load_splits` reads them, before the cuts to size (data.train_fraction and the limits),
    and the rows dropped per split for a missing value."""
    if data_cfg.source == "hub":
        checked = {split: _checked(ds, split, data_cfg, objective) for split, ds in _load_hub(data_cfg).items()}
    else:
        checked = {split: _checked_file(data_cfg, split, objective) for split in SPLITS if data_cfg[split] is not None}
    raw = {split: ds for split, (ds, _) in checked.items()}
    dropped = {split: n for split, (_, n) in checked.items() if n}
    return carve_splits(raw, data_cfg, objective.stratify), dropped
