"""The two shapes a prepared split takes: rows (one example each) and packed blocks. Item i has example id i.

Both read memory-mapped arrays written once by data/store.py, so a training process holds only the batches it uses,
whatever the corpus size. A batch fetched through the sampler keeps its seed (data/buckets.py). `lengths` drives length bucketing in data/buckets.py; None means every item is as long as
the others. `fingerprint` names the content (data, tokenizer and settings).

An objective prepares a split with Rows.prepare or Blocks.prepare, giving the function that encodes a batch of raw
rows and the settings that function depends on besides the data and the tokenizer.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from transferlab.data.buckets import carry_seed


def _tokenizer_of(dataset, encode, tokenizer, num_proc, indices: bool = False):
    from transferlab.data.tokenize import tokenize

    return lambda scratch: tokenize(dataset, encode, tokenizer, num_proc, scratch, indices)


class Rows(Dataset):
    """Examples of varying length; item i is {"id": i, "input_ids": int64 array, <scalar column>: value, ...,
    <aligned column>: int64 array as long as input_ids, <sequence>: int64 array of its own length}. `columns` are
    the scalar columns (labels), `aligned` the per-token ones (a tagger's labels), `sequences` further token
    sequences (a seq2seq target). `lengths` (for bucketing) count every token of a row."""

    def __init__(self, arrays: dict, scalars: list, fingerprint: str, aligned: tuple = (), sequences: tuple = ()):
        self.fingerprint = fingerprint
        self.ids, self.offsets = arrays["ids"], arrays["offsets"]
        self.columns = {name: arrays[name] for name in scalars}
        self.aligned = {name: arrays[name] for name in aligned}
        self.sequences = {name: (arrays[name], arrays[f"{name}_offsets"]) for name in sequences}
        self.lengths = np.diff(self.offsets)
        for _, offsets in self.sequences.values():
            self.lengths = self.lengths + np.diff(offsets)

    @classmethod
    def prepare(cls, dataset, encode, tokenizer, settings: dict, scalars: list, num_proc: int | None = None,
                aligned: tuple = (), indices: bool = False, sequences: tuple = ()) -> "Rows":
        """`encode(batch)` gives {"input_ids": [...], <scalar column>: [...], <aligned column>: [...]} for a batch
        of raw rows, any number of rows per raw row (QA's windows); with `indices`, encode(batch, indices) gets the
        raw rows' indices in the split too."""
        from transferlab.data import store
        from transferlab.data.tokenize import fingerprint

        key = fingerprint(dataset, tokenizer, {**settings, "scalars": list(scalars), "aligned": list(aligned),
                                               **({"sequences": list(sequences)} if sequences else {})})
        tokenize = _tokenizer_of(dataset, encode, tokenizer, num_proc, indices)
        arrays = store.rows(key, tokenize, scalars, len(tokenizer), tuple(aligned), tuple(sequences))
        return cls(arrays, scalars, key, tuple(aligned), tuple(sequences))

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        start, end = self.offsets[i], self.offsets[i + 1]
        return {"id": i, "input_ids": self.ids[start:end].astype(np.int64),
                **{c: values[i].item() for c, values in self.columns.items()},
                **{c: values[start:end].astype(np.int64) for c, values in self.aligned.items()},
                **{c: values[offsets[i] : offsets[i + 1]].astype(np.int64) for c, (values, offsets) in self.sequences.items()}}

    def __getitems__(self, indices):
        return carry_seed([self[i] for i in indices], indices)


class Blocks(Dataset):
    """Equal-length token blocks [n_blocks, block_size]; item i is row i as an int64 tensor."""

    lengths = None

    def __init__(self, blocks, fingerprint: str = ""):
        self.blocks, self.fingerprint = blocks, fingerprint

    @classmethod
    def prepare(cls, dataset, encode, tokenizer, settings: dict, block_size: int, num_proc: int | None = None) -> "Blocks":
        """`encode(batch)` gives {"input_ids": [...]}; the ids of every row, in order, are packed into blocks."""
        from transferlab.data import store
        from transferlab.data.tokenize import fingerprint

        key = fingerprint(dataset, tokenizer, settings)
        return cls(store.blocks(key, _tokenizer_of(dataset, encode, tokenizer, num_proc), block_size, len(tokenizer)), key)

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return torch.from_numpy(self.blocks[i].astype(np.int64))

    def __getitems__(self, indices):
        return carry_seed([self[i] for i in indices], indices)
