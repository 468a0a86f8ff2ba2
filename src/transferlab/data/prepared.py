"""The two shapes a prepared split takes: rows (one example each) and packed blocks. Item i has example id i.

Both read arrays written once by data/store.py, so a training process holds only the batches it uses, whatever the
corpus size. The arrays stay memory-mapped for reads of a whole column (`.blocks`, `.ids`, `.columns`); an item's
tokens are read with os.pread (`FileRows`), because a mapping read at random maps up to 64 KiB around every read
into the process. A batch fetched through the sampler keeps its seed (data/buckets.py). `lengths` drives length
bucketing in data/buckets.py; None means every item is as long as the others. `fingerprint` names the content
(data, tokenizer and settings).

An objective prepares a split with Rows.prepare or Blocks.prepare, giving the function that encodes a batch of raw
rows and the settings that function depends on besides the data and the tokenizer.
"""

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from transferlab.data.buckets import carry_seed


class FileRows:
    """Items along the first axis of a memory-mapped .npy array, read with os.pread instead of through the mapping.

    A mapping read at random maps the pages around each read into the process: the kernel's fault-around, 64 KiB a
    fault, whatever madvise says. 200 steps of 64 random 64-token blocks mapped 490 MB of a 571 MB blocks file
    into a training process; read with pread, 5 MB. pread copies the bytes asked for and nothing else is mapped;
    the file stays in the page cache, which the kernel can drop. It is as fast: 6 us a block against 19.
    """

    def __init__(self, array: np.memmap):
        self.path, self.offset, self.dtype, self.shape = array.filename, array.offset, array.dtype, array.shape
        self.item_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd = None

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        """Item i (an int; an array of shape[1:]) or items start:stop (a slice of step 1)."""
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            assert step == 1, "FileRows reads contiguous items"
            return self._read(start, max(0, stop - start)).reshape(-1, *self.shape[1:])
        i = key + self.shape[0] if key < 0 else key
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"index {key} out of range for {self.shape[0]} items")
        return self._read(i, 1).reshape(self.shape[1:])

    def _read(self, start: int, count: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return np.frombuffer(
            os.pread(self._fd, count * self.item_bytes, self.offset + start * self.item_bytes), dtype=self.dtype
        )

    def __getstate__(self):  # a spawned loader worker or DDP process opens its own descriptor
        return {**self.__dict__, "_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


def file_rows(array):
    """`array` read by FileRows where it is a file mapping and the platform has pread; else the array itself."""
    return FileRows(array) if isinstance(array, np.memmap) and hasattr(os, "pread") else array


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
        self._ids = file_rows(self.ids)
        self._aligned = {name: file_rows(values) for name, values in self.aligned.items()}
        self._sequences = {name: (file_rows(values), offsets) for name, (values, offsets) in self.sequences.items()}
        self.lengths = np.diff(self.offsets)
        for _, offsets in self.sequences.values():
            self.lengths = self.lengths + np.diff(offsets)

    @classmethod
    def prepare(
        cls,
        dataset,
        encode,
        tokenizer,
        settings: dict,
        scalars: list,
        num_proc: int | None = None,
        aligned: tuple = (),
        indices: bool = False,
        sequences: tuple = (),
    ) -> "Rows":
        """`encode(batch)` gives {"input_ids": [...], <scalar column>: [...], <aligned column>: [...]} for a batch
        of raw rows, any number of rows per raw row (QA's windows); with `indices`, encode(batch, indices) gets the
        raw rows' indices in the split too."""
        from transferlab.data import store
        from transferlab.data.tokenize import fingerprint

        key = fingerprint(
            dataset,
            tokenizer,
            {
                **settings,
                "scalars": list(scalars),
                "aligned": list(aligned),
                **({"sequences": list(sequences)} if sequences else {}),
            },
        )
        tokenize = _tokenizer_of(dataset, encode, tokenizer, num_proc, indices)
        arrays = store.rows(key, tokenize, scalars, len(tokenizer), tuple(aligned), tuple(sequences))
        return cls(arrays, scalars, key, tuple(aligned), tuple(sequences))

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        start, end = self.offsets[i], self.offsets[i + 1]
        return {
            "id": i,
            "input_ids": self._ids[start:end].astype(np.int64),
            **{c: values[i].item() for c, values in self.columns.items()},
            **{c: values[start:end].astype(np.int64) for c, values in self._aligned.items()},
            **{
                c: values[offsets[i] : offsets[i + 1]].astype(np.int64)
                for c, (values, offsets) in self._sequences.items()
            },
        }

    def __getitems__(self, indices):
        return carry_seed([self[i] for i in indices], indices)


class Blocks(Dataset):
    """Equal-length token blocks [n_blocks, block_size]; item i is row i as an int64 tensor."""

    lengths = None

    def __init__(self, blocks, fingerprint: str = ""):
        self.blocks, self.fingerprint = blocks, fingerprint
        self._blocks = file_rows(blocks)

    @classmethod
    def prepare(
        cls, dataset, encode, tokenizer, settings: dict, block_size: int, num_proc: int | None = None
    ) -> "Blocks":
        """`encode(batch)` gives {"input_ids": [...]}; the ids of every row, in order, are packed into blocks."""
        from transferlab.data import store
        from transferlab.data.tokenize import fingerprint

        key = fingerprint(dataset, tokenizer, settings)
        return cls(
            store.blocks(key, _tokenizer_of(dataset, encode, tokenizer, num_proc), block_size, len(tokenizer)), key
        )

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return torch.from_numpy(self._blocks[i].astype(np.int64))

    def __getitems__(self, indices):
        return carry_seed([self[i] for i in indices], indices)
