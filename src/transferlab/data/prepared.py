"""The two shapes a prepared split takes: rows (one example each) and packed blocks. Item i has example id i.

`lengths` drives length bucketing in data/buckets.py; None means every item is as long as the others.
"""

from torch.utils.data import Dataset


class Rows(Dataset):
    """Examples as columns read once into plain lists (indexing a datasets Column decodes Arrow on every access);
    item i is {"id": i, column: value, ...}. `fingerprint` names the content (data, tokenizer and settings)."""

    def __init__(self, tokenized, columns: list, length_column: str = "input_ids"):
        self.fingerprint = tokenized._fingerprint
        self.columns = {c: tokenized[c][:] for c in columns}
        self.lengths = [len(x) for x in self.columns[length_column]]

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return {"id": i, **{c: values[i] for c, values in self.columns.items()}}


class Blocks(Dataset):
    """Equal-length token blocks [n_blocks, block_size]; item i is row i."""

    lengths = None

    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return self.blocks.size(0)

    def __getitem__(self, i):
        return self.blocks[i]
