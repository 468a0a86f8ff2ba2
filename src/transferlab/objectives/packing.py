"""sft's packing (objective.packing=true): several prepared rows (conversations) to a training row of at most
data.max_seq_len tokens, so that a batch holds tokens rather than padding.

A packed row carries position_ids that restart at 0 with each conversation and no attention mask: transformers then
masks attention per conversation (masking_utils' packed-sequence mask, from the position_ids: causal within each
conversation and never across), so a token's logits are those it has with its conversation alone. The first label
of each conversation is dropped (-100): it is no target alone (nothing precedes it) and packed it would be the
previous conversation's last prediction. Rows are packed best-fit-decreasing: a row goes to the fullest block it fits.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from transferlab.data.buckets import carry_seed
from transferlab.objectives.base import IGNORE


def packed_groups(lengths, block: int) -> list:
    """The row indices of each block: every row in one block, each block's lengths summing to at most `block`.
    Blocks are kept by the room they have left, so the best fit is the first room >= a row's length (a numpy scan of
    block + 1 flags a row: linear in the rows, whatever their number)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    by_room, has_room = [[] for _ in range(block + 1)], np.zeros(block + 1, dtype=bool)
    groups = []
    for i in order.tolist():
        n = int(lengths[i])
        left = n + int(has_room[n:].argmax())
        if has_room[left]:
            b = by_room[left].pop()
            has_room[left] = bool(by_room[left])
        else:
            left, b = block, len(groups)
            groups.append([])
        groups[b].append(i)
        by_room[left - n].append(b)
        has_room[left - n] = True
    return [sorted(g) for g in groups]


def packed_row(items: list) -> dict:
    """One training row of `items` (prepared rows with input_ids and labels) end to end."""
    labels = [np.concatenate([[IGNORE], item["labels"][1:]]) for item in items]
    return {
        "input_ids": np.concatenate([item["input_ids"] for item in items]),
        "labels": np.concatenate(labels).astype(np.int64),
        "position_ids": np.concatenate([np.arange(len(item["input_ids"])) for item in items]),
    }


class PackedRows(Dataset):
    """Prepared rows packed into blocks of at most `block` tokens; item i is block i as packed_row gives it."""

    def __init__(self, rows, block: int):
        self.rows, self.fingerprint = rows, f"{rows.fingerprint}-packed-{block}"
        self.groups = packed_groups(rows.lengths, block)
        self.lengths = np.array([int(rows.lengths[g].sum()) for g in self.groups])

    def __len__(self):
        return len(self.groups)

    def __getitem__(self, i):
        return {"id": i, **packed_row([self.rows[j] for j in self.groups[i]])}

    def __getitems__(self, indices):
        return carry_seed([self[i] for i in indices], indices)


class PackedCollator:
    """Packed rows right-padded to the longest: labels with -100, position_ids with 0 (a pad token then attends to
    itself alone); no attention mask, so that the model masks by position_ids."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list) -> dict:
        width = max(len(e["input_ids"]) for e in examples)
        batch = {"n_rows": len(examples), "n_tokens": sum(len(e["input_ids"]) for e in examples)}
        for column, pad in (("input_ids", self.pad_id), ("labels", IGNORE), ("position_ids", 0)):
            batch[column] = torch.full((len(examples), width), pad, dtype=torch.long)
            for row, e in enumerate(examples):
                batch[column][row, : len(e[column])] = torch.as_tensor(e[column])
        return batch
