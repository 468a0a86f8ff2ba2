"""Prepared data on disk: token ids in the smallest integer type, written once, read memory-mapped.

A tokenized split (datasets' Arrow, cached by datasets' fingerprint) is written here, one Arrow record batch at a
time, so neither writing nor training ever holds a whole split in memory:
- packed blocks for the LM objectives: ``blocks.npy`` [n_blocks, block_size];
- rows for the one-example-per-row objectives: ``ids.npy`` (every row's ids, concatenated), ``offsets.npy``
  (row i is ids[offsets[i]:offsets[i + 1]]) and one ``<column>.npy`` per scalar column (labels).
Ids are uint16 when the vocabulary has at most 65,536 entries, else uint32 (2 or 4 bytes, against Arrow's 8 for the
Python ints a tokenizer returns).

Each prepared split is a directory under ``$TRANSFERLAB_CACHE/prepared/`` named by a hash of the tokenized split's
fingerprint (data, tokenizer, objective settings) and the layout. It is written under a temp name and renamed when
complete: a preparation that dies midway leaves nothing a later run would trust, and is redone.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from transferlab.errors import TransferlabError


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024


def id_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def _column(dataset, name: str):
    if dataset._indices is not None:  # a select()/shuffle() view: materialise the rows it points at
        dataset = dataset.flatten_indices()
    return dataset.data.column(name)


def _values(chunk, dtype) -> np.ndarray:
    values = chunk.flatten().to_numpy(zero_copy_only=False)
    if values.size and int(values.max()) > np.iinfo(dtype).max:
        raise TransferlabError(f"token id {int(values.max())} does not fit {np.dtype(dtype).name}: the tokenizer and its vocabulary size disagree")
    return values


def _prepared(dataset, layout: dict, write, needed: int) -> Path:
    """The directory holding `dataset` prepared as `layout` says; `write(tmp_dir)` fills it (`needed` bytes) when it
    is missing."""
    from transferlab.config import cache_dir

    key = hashlib.sha256(json.dumps({"data": dataset._fingerprint, **layout}, sort_keys=True).encode()).hexdigest()[:32]
    final = cache_dir() / "prepared" / key
    if final.is_dir():
        return final
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(final.parent).free
        if free < needed:
            raise TransferlabError(
                f"preparing this split needs {_size(needed)} under {final.parent}, which has {_size(free)} free; "
                "free space there or set TRANSFERLAB_CACHE to another dir"
            )
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}."))
        write(tmp)
        (tmp / "layout.json").write_text(json.dumps(layout, sort_keys=True) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same preparation first: keep its copy
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise TransferlabError(f"cannot write prepared data under {final.parent} ({e.strerror or e}); free space there or set TRANSFERLAB_CACHE to another dir") from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_blocks(tokenized, block_size: int, vocab_size: int) -> np.ndarray:
    """The token stream cut into [n_blocks, block_size], memory-mapped.

    The last block is completed by wrapping around to the stream's start, so no token is dropped and none is padding;
    at most block_size - 1 tokens are seen twice per epoch.
    """
    import pyarrow.compute as pc

    dtype = id_dtype(vocab_size)
    column = _column(tokenized, "input_ids")
    total = int(pc.sum(pc.list_value_length(column)).as_py() or 0) if len(column) else 0
    if total == 0:
        raise TransferlabError("nothing to pack: every text tokenized to zero tokens")
    n_blocks = -(-total // block_size)

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp / "blocks.npy", mode="w+", dtype=dtype, shape=(n_blocks, block_size))
        flat = out.reshape(-1)
        pos = 0
        for chunk in column.chunks:
            values = _values(chunk, dtype)
            flat[pos : pos + values.size] = values
            pos += values.size
        while pos < flat.size:  # wrap around (more than once only when the whole stream is shorter than a block)
            n = min(pos, flat.size - pos)
            flat[pos : pos + n] = flat[:n]
            pos += n
        out.flush()
        del out

    layout = {"layout": "blocks", "block_size": block_size, "dtype": np.dtype(dtype).name, "v": 1}
    needed = n_blocks * block_size * np.dtype(dtype).itemsize
    return np.load(_prepared(tokenized, layout, write, needed) / "blocks.npy", mmap_mode="r")


def write_rows(tokenized, scalars: list, vocab_size: int) -> dict:
    """{"ids", "offsets", <scalar column>...} as memory-mapped arrays (see the module docstring)."""
    import pyarrow.compute as pc

    dtype = id_dtype(vocab_size)
    column = _column(tokenized, "input_ids")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False) if len(column) else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    def write(tmp: Path) -> None:
        np.save(tmp / "offsets.npy", offsets)
        out = np.lib.format.open_memmap(tmp / "ids.npy", mode="w+", dtype=dtype, shape=(int(offsets[-1]),))
        pos = 0
        for chunk in column.chunks:
            values = _values(chunk, dtype)
            out[pos : pos + values.size] = values
            pos += values.size
        out.flush()
        del out
        for name in scalars:
            np.save(tmp / f"{name}.npy", _column(tokenized, name).to_numpy())

    layout = {"layout": "rows", "scalars": list(scalars), "dtype": np.dtype(dtype).name, "v": 1}
    needed = int(offsets[-1]) * np.dtype(dtype).itemsize + (len(offsets) + len(scalars) * len(lengths)) * 8
    where = _prepared(tokenized, layout, write, needed)
    return {name: np.load(where / f"{name}.npy", mmap_mode="r") for name in ("ids", "offsets", *scalars)}
