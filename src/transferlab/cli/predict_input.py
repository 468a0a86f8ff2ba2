"""transferlab-predict's input: the rows of a data file (or stdin) as read, checked before any weights load.

Each task reads some columns (COLUMNS; --<field>-column renames them) and writes its prediction under names of its own
(OUTPUTS). A cell the model reads must hold text, and is named by its line when it does not; no input column may bear
a prediction's name (refused rather than suffixed: a name that moves with the input would break what reads the
output). Every other cell passes through as read.
"""

import json
import sys
from pathlib import Path

from transferlab.errors import TransferlabError

# the input columns each task reads, and the flag that renames each
COLUMNS = {
    "classification": {"text": "text"},
    "tagging": {"tokens": "tokens"},
    "qa": {"question": "question", "context": "context"},
    "generation": {"source": "source"},
}
# the columns each task's prediction adds: prefixed, so that a gold `label` or `answer` in the input stays beside them
OUTPUTS = {
    "classification": ("pred_label", "pred_score", "pred_top_k"),
    "tagging": ("pred_tags",),
    "qa": ("pred_answer", "pred_score", "pred_start"),
    "generation": ("pred_generation",),
}


def read(path: str, fmt: str, task: str, renamed: dict):
    """The input rows as a datasets.Dataset: the columns the task reads hold text; none has a prediction's name."""
    from datasets import Dataset

    from transferlab.data.loading import read_file
    from transferlab.run.preflight import quiet

    if path == "-":
        lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not lines:
            raise TransferlabError("stdin: no input (every line is blank)")
        column = next(iter(COLUMNS[task]))
        values = [line.split() if task == "tagging" else line for line in lines]
        ds = Dataset.from_dict({renamed.get(column, column): values})
    else:
        with quiet():  # no progress bar before the one line that names a bad cell
            ds = read_file(path, "input", "strict", fmt)
    taken = [c for c in OUTPUTS[task] if c in ds.column_names]
    if taken:
        raise TransferlabError(
            f"{path}: column '{taken[0]}' has a name this {task} export writes its prediction under "
            f"({', '.join(OUTPUTS[task])}); rename that column"
        )
    for field in COLUMNS[task]:
        column = renamed.get(field, field)
        if column not in ds.column_names:
            raise TransferlabError(
                f"{path}: no column '{column}' for this {task} export; columns found: "
                f"{', '.join(ds.column_names)}; name it with --{field}-column=<one of them>"
            )
        _check_values(ds[column], path, column, words=field == "tokens")
    return ds


def _check_values(values, path: str, column: str, words: bool) -> None:
    """Every value the model reads is text (a tagger's: words, or a text split at spaces), named by its row if not."""
    for i, value in enumerate(values):
        if isinstance(value, str) or words and isinstance(value, list) and all(isinstance(w, str) for w in value):
            continue
        what = "empty" if value is None else f"not text ({json.dumps(value, ensure_ascii=False)[:40]})"
        raise TransferlabError(f"{path} {_row(path, i)}: '{column}' is {what}; give it text, or drop the row")


def _row(path: str, i: int) -> str:
    """Row i as a user finds it: a line of a CSV/TSV (after its header) or JSONL file, else its number."""
    offset = {".csv": 2, ".tsv": 2, ".jsonl": 1}.get(Path(path.removesuffix(".gz")).suffix)
    return f"line {i + offset}" if offset else f"row {i + 1}"
