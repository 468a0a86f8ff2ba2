"""Load the raw splits (local files or a hub dataset), check them, and cut them to size.

Bad input fails here, before any tokenization, with one line naming the file and the fix.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional

from transferlab.config import cache_dir
from transferlab.data.splits import stratified_sample, stratified_take
from transferlab.errors import TransferlabError

SPLITS = ("train", "validation", "test")
_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


def _format(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return _FORMATS[suffixes[-1].lower()]


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


def _load_file(path_str: str, split: str, encoding_errors: str):
    from datasets import load_dataset

    path = Path(path_str)
    if not path.is_file():
        raise TransferlabError(f"data.{split}: file not found: {path}")
    if path.stat().st_size == 0:
        raise TransferlabError(f"data.{split}: {path} is empty; give a file with at least one example")
    fmt = _format(path)
    if encoding_errors == "replace" and fmt != "parquet":
        path = _sanitized_copy(path, cache_dir() / "utf8")
    kwargs = {"delimiter": "\t"} if path.name.endswith((".tsv", ".tsv.gz")) else {}
    try:
        ds = load_dataset(fmt, data_files={split: str(path)}, split=split, **kwargs)
    except Exception as e:  # datasets raises many types; name the real problem instead
        raise _diagnose(Path(path_str), fmt, e) from e
    if len(ds) == 0:
        raise TransferlabError(f"data.{split}: {path_str} has no examples; give a file with at least one example")
    return ds


def _load_hub(data_cfg) -> Dict[str, object]:
    from datasets import load_dataset

    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    try:
        full = load_dataset(data_cfg.path, data_cfg.config_name)
    except Exception as e:
        raise TransferlabError(
            f"data.path={data_cfg.path}: could not load this hub dataset (offline mode {'on' if offline else 'off'}; "
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


def _check_columns(ds, split: str, where: str, data_cfg) -> None:
    needed = [data_cfg.text_column] + ([data_cfg.label_column] if data_cfg.label_column else [])
    for column, key in zip(needed, ("text_column", "label_column")):
        if column not in ds.column_names:
            raise TransferlabError(
                f"data.{split} ({where}) has no column '{column}'; columns found: {', '.join(ds.column_names)}; "
                f"set data.{key}=<one of them>"
            )


def _column(ds, column: str) -> list:
    """A whole column as a list in one read (iterating a datasets Column decodes Arrow row by row, ~50x slower)."""
    return ds[column][:]


def _labels(ds, column: Optional[str]):
    return [str(v) for v in _column(ds, column)] if column else None


def load_splits(data_cfg, labeled: bool) -> Dict[str, object]:
    """train/validation/test as datasets.Dataset with columns text (+ label), cut to the configured size."""
    if data_cfg.source == "hub":
        raw = _load_hub(data_cfg)
    else:
        raw = {s: _load_file(data_cfg[s], s, data_cfg.encoding_errors) for s in SPLITS if data_cfg[s] is not None}
    label_column = data_cfg.label_column if labeled else None
    for split, ds in raw.items():
        _check_columns(ds, split, data_cfg[split] if data_cfg.source == "files" else data_cfg.path, data_cfg)
        keep = [data_cfg.text_column] + ([label_column] if label_column else [])
        ds = ds.select_columns(keep)
        raw[split] = ds.rename_columns({data_cfg.text_column: "text", **({label_column: "label"} if label_column else {})})

    # Missing splits are carved from train (stratified, fixed seed), validation first.
    for split in ("validation", "test"):
        if split not in raw:
            train = raw["train"]
            held, rest = stratified_take(_labels(train, "label" if labeled else None), len(train), data_cfg.validation_fraction, data_cfg.split_seed)
            raw[split], raw["train"] = train.select(held), train.select(rest)

    if len(raw["train"]) == 0:
        raise TransferlabError("data.train has too few examples to carve validation/test splits from; give data.validation and data.test files")
    label_key = "label" if labeled else None
    if data_cfg.train_fraction < 1:
        train = raw["train"]
        taken, _ = stratified_take(_labels(train, label_key), len(train), data_cfg.train_fraction, data_cfg.split_seed)
        raw["train"] = train.select(taken)
    limits = {"train": data_cfg.max_train_samples, "validation": data_cfg.max_eval_samples, "test": data_cfg.max_eval_samples}
    for split, limit in limits.items():
        if limit is not None and limit < len(raw[split]):
            ds = raw[split]
            raw[split] = ds.select(stratified_sample(_labels(ds, label_key), len(ds), limit, data_cfg.split_seed))
    return raw


def label_mapping(raw: Dict[str, object]) -> Dict[str, int]:
    """label -> id from the train split (sorted, as strings); other splits must not hold unseen labels."""
    train_labels = sorted({str(v) for v in _column(raw["train"], "label")})
    for split in ("validation", "test"):
        unseen = sorted({str(v) for v in _column(raw[split], "label")} - set(train_labels))
        if unseen:
            shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise TransferlabError(
                f"data.{split} has labels never seen in train: {shown}; the model cannot predict them "
                "(fix the split, or raise data.train_fraction/max_train_samples so train covers every label)"
            )
    if len(train_labels) < 2:
        raise TransferlabError(f"classification needs at least 2 labels in train; found {train_labels}")
    return {label: i for i, label in enumerate(train_labels)}
