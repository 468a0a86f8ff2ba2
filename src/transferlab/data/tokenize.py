"""Tokenize a raw split into a scratch dir, in parallel processes on large splits; data/store.py keeps the result.

The objective supplies the function that encodes a batch of rows. The fingerprint is derived from the input split,
the tokenizer's full definition and the objective's settings (its name included), so a changed tokenizer, objective
or max_seq_len prepares anew and nothing else does. It is known before any text is read: a prepared split found in
the cache under it costs no tokenization.
"""

import json
from pathlib import Path

from transferlab.cache import cache_key


def fingerprint(dataset, tokenizer, settings: dict) -> str:
    import numpy as np

    from transferlab.data.store import id_dtype

    if hasattr(tokenizer, "backend_tokenizer"):
        # Calling the tokenizer sets its truncation/padding state; only the vocabulary and pipeline matter.
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        definition = {k: v for k, v in spec.items() if k not in ("truncation", "padding")}
    else:
        definition = repr(tokenizer)
    payload = {
        "data": dataset._fingerprint,
        "tokenizer": definition,
        "ids": np.dtype(id_dtype(len(tokenizer))).name,
        **settings,
    }
    return cache_key(payload)


ROWS_PER_PROCESS = 10_000  # below this a process's start-up costs more than its share of the work


def processes(num_proc: int | None, rows: int) -> int | None:
    """data.num_proc (None: every CPU), at most one process per ROWS_PER_PROCESS rows; None for one process."""
    import os

    n = min(num_proc or os.cpu_count() or 1, rows // ROWS_PER_PROCESS)
    return n if n > 1 else None


def tokenize(dataset, encode, tokenizer, num_proc: int | None, scratch: Path, indices: bool = False):
    """dataset.map(encode) in batches, replacing every raw column, written under `scratch` (Arrow); with `indices`,
    encode(batch, indices) also gets the rows' indices in the split (an encode that makes several rows of one).
    Token ids are stored in the smallest integer type that holds the vocabulary (data/store.py)."""
    import numpy as np

    from transferlab.data.store import id_dtype

    dtype = id_dtype(len(tokenizer))

    def encode_small(batch, *where):
        out = encode(batch, *where)
        out["input_ids"] = [np.asarray(ids, dtype=dtype) for ids in out["input_ids"]]
        return out

    scratch.mkdir(parents=True, exist_ok=True)
    return dataset.map(
        encode_small,
        batched=True,
        with_indices=indices,
        batch_size=2000,
        remove_columns=dataset.column_names,
        cache_file_name=str(scratch / "tokenized.arrow"),
        num_proc=processes(num_proc, len(dataset)),
        desc="tokenize",
    )
