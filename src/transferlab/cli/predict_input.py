"""transferlab-predict's input: the rows of a data file (or stdin) as read, checked before any weights load.

The export's objective reads some fields of each row (its input fields, each from a column: --<field>-column, else
the column its run read, else the field's name) and writes its prediction under column names of its own (its
`outputs`). A cell the model reads must hold text (words: a list of texts, or a text split at whitespace), and is
named by its line when it does not; no input column may bear a prediction's name (refused rather than suffixed: a
name that moves with the input would break what reads the output). Every other cell passes through as read.
"""

import json
import sys
from pathlib import Path

from transferlab.errors import TransferlabError

CHAT_KEYS = {"messages": "messages", "sharegpt": "conversations", "alpaca": "instruction"}  # a format's own field


def read(path: str, fmt: str, objective_cls, columns: dict, given: dict | None = None) -> tuple[list, list]:
    """(the input rows as read, what the model reads of each: {field: value}); `columns` (field -> column) hold text
    and no column has a prediction's name. Chat formats (--format messages|alpaca|sharegpt) give each row's
    conversation as the source, for an export that continues conversations (sft); `given` (field -> column) are the
    --<field>-column options, which a conversation does not read."""
    from transferlab.data.chat import CHAT_FORMATS

    if fmt in CHAT_FORMATS:
        for field, column in (given or {}).items():
            flag = f"--{field.replace('_', '-')}-column"
            raise TransferlabError(f"{flag}={column}: --format {fmt} reads whole conversations, no column; drop {flag}")
        return _conversations(path, fmt, objective_cls)
    ds = _rows(path, fmt, objective_cls, columns)
    rows = ds.to_list()
    return rows, [{f: row[c] for f, c in columns.items()} for row in rows]


def _conversations(path: str, fmt: str, objective_cls) -> tuple[list, list]:
    from transferlab.data.chat import prompts
    from transferlab.data.files import existing_file

    name = objective_cls.name
    if not objective_cls.chat or path == "-":
        where = "stdin" if path == "-" else f"a {name} export"
        raise TransferlabError(
            f"--format {fmt} reads conversations from a file, which {where} cannot take; give an sft export a "
            "JSON-lines file, or drop --format"
        )
    found = prompts(str(existing_file(path, "input")), fmt)
    taken = sorted({c for row, _ in found for c in objective_cls.outputs if c in row})
    if taken:
        raise TransferlabError(
            f"{path}: field '{taken[0]}' has a name this {name} export writes its prediction under; rename it"
        )
    return [row for row, _ in found], [{"source": turns} for _, turns in found]


def _rows(path: str, fmt: str, objective_cls, columns: dict):
    from datasets import Dataset

    from transferlab.data.loading import read_file
    from transferlab.run.preflight import quiet

    if path == "-":  # one text a line, for the first field the objective reads
        lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not lines:
            raise TransferlabError("stdin: no input (every line is blank)")
        field, column = next(iter(columns.items()))
        ds = Dataset.from_dict({column: [line.split() if field in objective_cls.words else line for line in lines]})
    else:
        with quiet():  # no progress bar before the one line that names a bad cell
            ds = read_file(path, "input", "strict", fmt)
    name, outputs = objective_cls.name, objective_cls.outputs
    taken = [c for c in outputs if c in ds.column_names]
    if taken:
        raise TransferlabError(
            f"{path}: column '{taken[0]}' has a name this {name} export writes its prediction under "
            f"({', '.join(outputs)}); rename that column"
        )
    chat = [f for f, key in CHAT_KEYS.items() if key in ds.column_names] if objective_cls.chat else []
    for field, column in columns.items():
        if column not in ds.column_names and chat:
            raise TransferlabError(
                f"{path}: no column '{column}', but '{CHAT_KEYS[chat[0]]}': conversations; read them with "
                f"--format {chat[0]}"
            )
        if column not in ds.column_names:
            raise TransferlabError(
                f"{path}: no column '{column}' for this {name} export; columns found: "
                f"{', '.join(ds.column_names)}; name it with --{field.replace('_', '-')}-column=<one of them>"
            )
        _check_values(ds[column], path, column, words=field in objective_cls.words)
    return ds


def _check_values(values, path: str, column: str, words: bool) -> None:
    """Every value the model reads is text (words: a list of texts, or a text split at spaces), named by its row if
    not."""
    for i, value in enumerate(values):
        if isinstance(value, str) or words and isinstance(value, list) and all(isinstance(w, str) for w in value):
            continue
        what = "empty" if value is None else f"not text ({json.dumps(value, ensure_ascii=False)[:40]})"
        raise TransferlabError(f"{path} {_row(path, i)}: '{column}' is {what}; give it text, or drop the row")


def _row(path: str, i: int) -> str:
    """Row i as a user finds it: a line of a CSV/TSV (after its header) or JSONL file, else its number."""
    offset = {".csv": 2, ".tsv": 2, ".jsonl": 1}.get(Path(path.removesuffix(".gz")).suffix)
    return f"line {i + offset}" if offset else f"row {i + 1}"
