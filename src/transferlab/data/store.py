"""Prepared data on disk: token ids in the smallest integer type, written once, read memory-mapped.

A split is tokenized (datasets' Arrow, in parallel processes) into a scratch dir, then written here one Arrow
record batch at a time, so neither writing nor training ever holds a whole split in memory:
- packed blocks for the LM objectives: ``blocks.npy`` [n_blocks, block_size];
- rows for the one-example-per-row objectives: ``ids.npy`` (every row's ids, concatenated), ``offsets.npy``
  (row i is ids[offsets[i]:offsets[i + 1]]), one ``<column>.npy`` per scalar column (labels), per aligned column
  (one value per token) and per further token sequence (a seq2seq target, with its own ``<name>_offsets.npy``).
Ids are uint16 when the vocabulary has at most 65,536 entries, else uint32 (2 or 4 bytes, against Arrow's 8 for the
Python ints a tokenizer returns). The tokenized Arrow is deleted once written: the arrays are the only copy kept.

Each prepared split is a directory under ``$TRANSFERLAB_CACHE/prepared/`` named by a hash of its fingerprint (data,
tokenizer, objective settings) and the layout. It is looked up before anything is tokenized: a hit costs no work.
A miss is built and sealed through transferlab.cache (temp name, manifest of sizes and checksums, rename): a
preparation that dies midway leaves nothing a later run would trust, and a damaged entry is reported and rebuilt.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from transferlab.errors import TransferlabError

written: list = []  # keys of the splits this process prepared (not found in the cache), in order


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
        raise TransferlabError(
            f"token id {int(values.max())} does not fit {np.dtype(dtype).name}: "
            "the tokenizer and its vocabulary size disagree"
        )
    return values


def _ensure_space(where: Path, needed: int) -> None:
    free = shutil.disk_usage(where).free
    if free < needed:
        raise TransferlabError(
            f"preparing this split needs {_size(needed)} under {where}, which has {_size(free)} free; "
            "free space there or set TRANSFERLAB_CACHE to another dir"
        )


def _prepared(fingerprint: str, layout: dict, write) -> Path:
    """The directory holding the split `fingerprint` names, prepared as `layout` says; on a miss (or a damaged entry)
    `write(tmp_dir)` fills it (tokenizing into tmp_dir/scratch, which is removed before the entry is sealed)."""
    from transferlab.cache import building, cache_key, entry_path, lookup

    key = cache_key({"data": fingerprint, **layout})
    found = lookup("prepared", key)
    if found is not None:
        return found
    final = entry_path("prepared", key)
    try:
        with building("prepared", key) as tmp:
            write(tmp)
            shutil.rmtree(tmp / "scratch", ignore_errors=True)
            (tmp / "layout.json").write_text(json.dumps(layout, sort_keys=True) + "\n")
        written.append(key)
    except OSError as e:
        raise TransferlabError(
            f"cannot write prepared data under {final.parent} ({e.strerror or e}); "
            "free space there or set TRANSFERLAB_CACHE to another dir"
        ) from None
    return final


def blocks(fingerprint: str, tokenize, block_size: int, vocab_size: int) -> np.ndarray:
    """The token stream cut into [n_blocks, block_size], memory-mapped. `tokenize(scratch_dir)` gives the tokenized
    split (an ``input_ids`` column) and is called only when the cache has no copy.

    The last block is completed by wrapping around to the stream's start, so no token is dropped and none is padding;
    at most block_size - 1 tokens are seen twice per epoch.
    """
    dtype = id_dtype(vocab_size)

    def write(tmp: Path) -> None:
        import pyarrow.compute as pc

        column = _column(tokenize(tmp / "scratch"), "input_ids")
        total = int(pc.sum(pc.list_value_length(column)).as_py() or 0) if len(column) else 0
        if total == 0:
            raise TransferlabError("nothing to pack: every text tokenized to zero tokens")
        n_blocks = -(-total // block_size)
        _ensure_space(tmp.parent, n_blocks * block_size * np.dtype(dtype).itemsize)
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

    layout = {"layout": "blocks", "block_size": block_size, "dtype": np.dtype(dtype).name, "v": 2}
    return np.load(_prepared(fingerprint, layout, write) / "blocks.npy", mmap_mode="r")


def _sequences(column, dtype, tmp: Path, name: str, offsets_name: str) -> np.ndarray:
    """A list column written as <name>.npy (every row's values, concatenated) and <offsets_name>.npy; the offsets."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False) if len(column) else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    _ensure_space(tmp.parent, int(offsets[-1]) * np.dtype(dtype).itemsize + len(offsets) * 8)
    np.save(tmp / f"{offsets_name}.npy", offsets)
    out = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=(int(offsets[-1]),))
    pos = 0
    for chunk in column.chunks:
        values = _values(chunk, dtype)
        out[pos : pos + values.size] = values
        pos += values.size
    out.flush()
    del out
    return offsets


def rows(
    fingerprint: str, tokenize, scalars: list, vocab_size: int, aligned: tuple = (), sequences: tuple = ()
) -> dict:
    """{"ids", "offsets", <scalar column>..., <aligned column>..., <sequence>, <sequence>_offsets...} as memory-mapped
    arrays (see the module docstring); `tokenize` as for blocks, its split also holding the scalar columns, the
    aligned ones: one int per token (a tagger's labels), stored as int32 beside the ids, row i at the same offsets,
    and other token sequences of their own length (a seq2seq target), stored as the ids are, with their own offsets."""
    dtype = id_dtype(vocab_size)

    def write(tmp: Path) -> None:
        tokenized = tokenize(tmp / "scratch")
        offsets = _sequences(_column(tokenized, "input_ids"), dtype, tmp, "ids", "offsets")
        for name in sequences:
            _sequences(_column(tokenized, name), dtype, tmp, name, f"{name}_offsets")
        for name in scalars:
            np.save(tmp / f"{name}.npy", _column(tokenized, name).to_numpy())
        for name in aligned:
            out = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.int32, shape=(int(offsets[-1]),))
            pos = 0
            for chunk in _column(tokenized, name).chunks:
                values = chunk.flatten().to_numpy(zero_copy_only=False)
                out[pos : pos + values.size] = values
                pos += values.size
            if pos != out.size:
                raise TransferlabError(
                    f"column '{name}' is not aligned with input_ids ({pos} values for {out.size} tokens)"
                )
            out.flush()
            del out

    layout = {
        "layout": "rows",
        "scalars": list(scalars),
        "aligned": list(aligned),
        "dtype": np.dtype(dtype).name,
        "v": 2,
        **({"sequences": list(sequences)} if sequences else {}),
    }
    where = _prepared(fingerprint, layout, write)
    names = ("ids", "offsets", *scalars, *aligned, *sequences, *(f"{name}_offsets" for name in sequences))
    return {name: np.load(where / f"{name}.npy", mmap_mode="r") for name in names}
