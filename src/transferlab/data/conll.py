"""CoNLL files: one token per line, columns separated by whitespace, the word first and the tag last; a blank line
ends a sentence and -DOCSTART- lines are skipped. Read into rows {"tokens": [...], "tags": [...]} (Arrow, written
by datasets as the file is read, so a large file is never held whole)."""

import gzip
from pathlib import Path

from transferlab.errors import TransferlabError


def _sentences(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    tokens, tags, width, start = [], [], None, 0
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            columns = line.split()
            if columns and columns[0] == "-DOCSTART-":
                continue
            if not columns:
                if tokens:
                    yield {"tokens": tokens, "tags": tags}
                tokens, tags = [], []
                continue
            if width is None:
                width, start = len(columns), number
            if len(columns) != width or width < 2:
                raise TransferlabError(
                    f"{path}:{number}: {len(columns)} column{'s' if len(columns) != 1 else ''}, "
                    f"but line {start} has {width}; "
                    "every token line needs the same columns, the word first and the tag last (fix or remove that line)"
                )
            tokens.append(columns[0])
            tags.append(columns[-1])
    if tokens:
        yield {"tokens": tokens, "tags": tags}


def read_conll(path: Path):
    """A datasets.Dataset of the file's sentences; a malformed line fails naming file:line."""
    from datasets import Features, Sequence, Value

    from transferlab.data.readers import from_rows

    return from_rows(
        _sentences, Features({"tokens": Sequence(Value("string")), "tags": Sequence(Value("string"))}), path
    )
