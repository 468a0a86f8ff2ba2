"""Multi-label cells, read exactly as written, and the label sets stored as bits.

A cell is a list of labels (JSON/JSONL/parquet), or a text cell split at data.label_separator as the split is read
(`as_lists`), each part kept as written (`a; b` gives `a` and ` b`: nothing is stripped). An empty cell (null, an
empty list, a blank text) is a row with no label: none of them applies. The vocabulary is train's labels, sorted.
"""

import json

from transferlab.errors import TransferlabError
from transferlab.objectives.classification import label_text

BITS = 63  # labels per stored int64 column (bit 63 would be the sign): a row's label set as a few scalars


def as_lists(split, data_cfg):
    """With data.label_separator set, every label cell as a list: a text split at it (a blank one: []), a list as it
    is. Unset: the cells as read (a text cell is then refused by `label_set`)."""
    column, separator = data_cfg.label_column, data_cfg.get("label_separator")
    if separator is None or column not in split.column_names:
        return split

    def cut(cell) -> list:
        if isinstance(cell, list):
            return [label_text(v) for v in cell]
        return [] if cell is None or not label_text(cell).strip() else label_text(cell).split(separator)

    return split.map(lambda b: {column: [cut(c) for c in b[column]]}, batched=True, desc=f"{column}: label lists")


def label_set(cell) -> list:
    """The labels of one cell, in order, each once ([] for an empty cell); raises ValueError (said of the cell) when
    they cannot be read."""
    shown = json.dumps(cell, ensure_ascii=False)[:60]
    if cell is None or isinstance(cell, str) and not cell.strip():
        return []
    if not isinstance(cell, list):
        raise ValueError(
            f"label cell {shown} is not a list of labels; give a list (JSON/JSONL/parquet), or set "
            "data.label_separator=<the text between labels> (e.g. ';') to split text cells"
        )
    labels = [label_text(v) for v in cell]
    if "" in labels or None in cell:
        raise ValueError(
            f"labels {shown} hold an empty label (an empty list item, or separators with nothing between them); "
            "remove it"
        )
    return list(dict.fromkeys(labels))


def check_cells(cells, name_row) -> None:
    for i, cell in enumerate(cells):
        try:
            label_set(cell)
        except ValueError as e:
            raise TransferlabError(f"{name_row(i)}: {e}") from None


def vocabulary(train) -> dict:
    """label -> id from the train split (sorted, as written)."""
    labels = sorted({label for cell in train["label"][:] for label in label_set(cell)})
    if not labels:
        raise TransferlabError(
            "objective=multilabel_classification needs labels in train, but every row of data.train has none; "
            "check data.label_column"
        )
    return {label: i for i, label in enumerate(labels)}


def check_seen(splits: dict, data_cfg) -> None:
    """Every validation/test label must occur in train: the model cannot predict the others."""
    known = set(vocabulary(splits["train"]))
    for split in ("validation", "test"):
        if split not in splits:
            continue
        unseen = sorted({label for cell in splits[split]["label"][:] for label in label_set(cell)} - known)
        if unseen:
            where = data_cfg.get(split) or f"carved from {data_cfg.get('train')}"
            if data_cfg.get("source") == "hub":
                where = data_cfg.get("path")
            shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise TransferlabError(
                f"data.{split} ({where}) has labels never seen in train: {shown}; the model cannot predict them "
                "(fix the split, or raise data.train_fraction/max_train_samples so train covers every label)"
            )


def bit_columns(n_labels: int) -> list:
    """The scalar columns a label set is stored in."""
    return [f"labels_{j}" for j in range(-(-n_labels // BITS))]


def packed(ids, columns: list) -> dict:
    """A label set (ids) as {column: int}, bit i of the set in column i // BITS."""
    words = [0] * len(columns)
    for i in ids:
        words[i // BITS] |= 1 << (i % BITS)
    return dict(zip(columns, words))


def unpacked(batch: dict, columns: list, n_labels: int):
    """A batch's label sets as a float [rows, n_labels] 0/1 tensor, on the device its columns are on."""
    import torch

    words = torch.stack([batch[c] for c in columns], -1)
    bits = (words.unsqueeze(-1) >> torch.arange(BITS, device=words.device)) & 1
    return bits.flatten(1)[:, :n_labels].float()
