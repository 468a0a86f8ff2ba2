"""CSV and TSV files, read as text: every cell is the string the file holds (`nan`, `NA`, `null`, `001`, `true`
included), and only an empty cell is missing (or one of data.na_values, when the user names some). Nothing guesses a
type, so a label `001` stays `001`, and a column does not change meaning at row 10,000.

TSV is unquoted by default (data.quoting=auto): a field that starts with `"` is text, not the start of a quoted
field that would swallow the following lines. CSV follows RFC 4180 quoting. Each row keeps the file line it starts
on (`__line__`), so a message names the line a user finds in an editor, blank lines and multi-line cells included.
"""

import csv
import gzip
import sys
from pathlib import Path

from transferlab.errors import TransferlabError

LINE = "__line__"  # the file line a row starts on; dropped before anything but error messages sees the rows
csv.field_size_limit(sys.maxsize)  # a long document in one cell is data, not an error


def _open(path: str):
    # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of the first column's name
    return (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8-sig", newline="")


def delimiter_of(path) -> str:
    return "\t" if str(path).lower().removesuffix(".gz").endswith(".tsv") else ","


def quoted(path, quoting: str) -> bool:
    """data.quoting: csv (RFC 4180 quotes), none (a quote is a character), auto (csv for .csv, none for .tsv)."""
    return quoting == "csv" or (quoting == "auto" and delimiter_of(path) == ",")


def header(path, quoting: str = "auto") -> list:
    """The column names of the file's first line, checked: none empty or repeated."""
    try:
        with _open(str(path)) as f:
            first = next(_reader(f, path, quoting), None)
    except UnicodeDecodeError:
        from transferlab.data.readers import decode_error

        raise decode_error(Path(path)) from None
    if not first:
        raise TransferlabError(f"{path}: the file is empty; give a header line and at least one example")
    seen = {}
    for i, name in enumerate(first, 1):
        if name in seen:
            raise TransferlabError(
                f"{path}:1: the header names '{name}' twice (columns {seen[name]} and {i}); "
                "give each column its own name"
            )
        seen[name] = i
    return first


def _reader(f, path, quoting: str):
    style = csv.QUOTE_MINIMAL if quoted(path, quoting) else csv.QUOTE_NONE
    return csv.reader(f, delimiter=delimiter_of(path), quoting=style, strict=True)


def _rows(path: str, quoting: str, na_values: list):
    names = header(path, quoting)
    missing = {"", *na_values}
    with _open(path) as f:
        reader = _reader(f, path, quoting)
        next(reader)
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise TransferlabError(
                    f"{path}:{start}: malformed CSV ({e}); fix that line, or set data.quoting=none "
                    "if quotes in it are text"
                ) from None
            except UnicodeDecodeError:
                from transferlab.data.readers import decode_error

                raise decode_error(Path(path)) from None
            if row and len(row) != len(names):
                raise TransferlabError(
                    f"{path}:{start}: {len(row)} fields, but the header has {len(names)}; "
                    "give every line one field per column (quote a field that holds the delimiter)"
                )
            if row:  # a blank line holds no cells: it is not a row of empty ones
                yield {LINE: start, **{n: (None if v in missing else v) for n, v in zip(names, row)}}
            start = reader.line_num + 1


def read_csv(path, quoting: str = "auto", na_values=()):
    """A datasets.Dataset of the file's rows, every column a string column, plus `__line__`."""
    from datasets import Features, Value

    from transferlab.data.readers import from_rows

    names = header(path, quoting)
    features = Features({LINE: Value("int64"), **{n: Value("string") for n in names}})
    return from_rows(_rows, features, path, quoting=quoting, na_values=list(na_values))
