"""The two shapes a prepared split takes: rows (one example each) and packed blocks. Item i has example id i.

Both read memory-mapped arrays written once by data/store.py, so a training process holds only the batches it uses,
whatever the corpus size. `lengths` drives length bucketing in data/buckets.py; None means every item is as long as
the others.
"""

import numpy as np
import torch
from torch.utils.data import Dataset


class Rows(Dataset):
    """Examples of varying length; item i is {"id": i, "input_ids": int64 array, <scalar column>: value, ...}.
    `columns` are the scalar columns (labels), `fingerprint` names the content (data, tokenizer and settings)."""

    def __init__(self, tokenized, scalars: list, vocab_size: int):
        from transferlab.data.store import write_rows

        self.fingerprint = tokenized._fingerprint
        arrays = write_rows(tokenized, scalars, vocab_size)
        self.ids, self.offsets = arrays["ids"], arrays["offsets"]
        self.columns = {name: arrays[name] for name in scalars}
        self.lengths = np.diff(self.offsets)

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        ids = self.ids[self.offsets[i] : self.offsets[i + 1]].astype(np.int64)
        return {"id": i, "input_ids": ids, **{c: values[i].item() for c, values in self.columns.items()}}


class Blocks(Dataset):
    """Equal-length token blocks [n_blocks, block_size]; item i is row i as an int64 tensor."""

    lengths = None

    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return torch.from_numpy(self.blocks[i].astype(np.int64))
