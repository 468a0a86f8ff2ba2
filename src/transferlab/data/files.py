"""A local file as a datasets.Dataset, every cell as the file holds it: the one reader of train, eval and predict.

CSV/TSV go through data/tabular.py (text, exactly as written); CoNLL and SQuAD through their own readers; JSON,
parquet and text through datasets, with its Arrow copy under $TRANSFERLAB_CACHE. A file that cannot be read fails
with one line naming the real problem (bad bytes and their offset, a malformed JSON line, an empty file).
"""

from pathlib import Path

from transferlab.cache import cache_key, cached_file
from transferlab.config import cache_dir
from transferlab.data.missing import complement, missing_rows
from transferlab.data.readers import FORMATS as READER_FORMATS
from transferlab.data.readers import decode_error, file_format, file_identity, read
from transferlab.data.tabular import LINE
from transferlab.errors import TransferlabError


def _diagnose(path: Path, fmt: str, error: Exception) -> TransferlabError:
    """Turn a loader failure into the precise problem: bad bytes, a malformed JSON line, or an empty file."""
    import gzip
    import json

    if fmt in ("json", "text"):
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return decode_error(path)
        if not text.strip():
            return TransferlabError(f"{path}: the file is empty; give a file with at least one example")
        if fmt == "json" and not text.lstrip().startswith("["):
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        json.loads(line)
                    except ValueError as e:
                        return TransferlabError(
                            f"{path}:{number}: malformed JSON line ({e.msg}); fix or remove that line"
                        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return TransferlabError(f"{path}: could not read it as {fmt} ({first})")


def _sanitized_copy(path: Path) -> Path:
    """data.encoding_errors=replace: a UTF-8 copy of the file with undecodable bytes as U+FFFD (cached by content)."""
    import gzip
    import hashlib

    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    name = "copy" + "".join(s for s in path.suffixes if s != ".gz")
    write = lambda out: out.write_text(raw.decode("utf-8", errors="replace"), encoding="utf-8")  # noqa: E731
    return cached_file("utf8", hashlib.sha256(raw).hexdigest()[:32], name, write)


def existing_file(path_str: str, split: str) -> Path:
    path = Path(path_str)
    if not path.is_file():
        raise TransferlabError(f"data.{split}: file not found: {path}")
    if path.stat().st_size == 0:
        raise TransferlabError(f"data.{split}: {path} is empty; give a file with at least one example")
    return path


def read_file(
    path_str: str,
    split: str,
    encoding_errors: str = "strict",
    fmt: str = "auto",
    quoting: str = "auto",
    na_values=(),
    lines: bool = False,
):
    """A local file as a datasets.Dataset, every cell as the file holds it (CSV/TSV: text, data/tabular.py; JSON
    and parquet: their own types). The one reader of train, eval and predict. `lines`: keep CSV rows' `__line__`."""
    from datasets import load_dataset

    path = existing_file(path_str, split)
    fmt = file_format(path, fmt)
    if encoding_errors == "replace" and fmt != "parquet":
        path = _sanitized_copy(path)
    if fmt == "csv":
        ds = read("csv", path, quoting=quoting, na_values=list(na_values))
    elif fmt in READER_FORMATS:
        ds = read(fmt, path)
    else:
        try:
            ds = load_dataset(fmt, data_files={split: str(path)}, split=split, cache_dir=str(cache_dir() / "datasets"))
        except Exception as e:  # datasets raises many types; name the real problem instead
            raise _diagnose(Path(path_str), fmt, e) from e
    if LINE in ds.column_names and not lines:
        ds = ds.remove_columns(LINE)
    # Named by the file (path, size, mtime, edges' hash) and how it is read, not by how datasets happened to write its
    # Arrow copy: every process that loads this file then agrees, and finds what the first one prepared.
    ds._fingerprint = cache_key(
        file_identity(path_str), fmt, quoting, list(na_values), encoding_errors, split, lines, 2
    )
    if fmt == "text":  # one text per line: a blank line separates paragraphs, it is not a missing value
        blank = missing_rows(ds, "text")
        ds = ds.select(complement(blank, len(ds))) if len(blank) else ds
    if len(ds) == 0:
        raise TransferlabError(
            f"data.{split}: {path_str} has no examples (a header alone?); give a file with at least one example"
        )
    return ds
