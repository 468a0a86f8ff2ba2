"""Tokenize a raw split once; datasets' cache makes a re-run skip the work.

The objective supplies the function that encodes a batch of rows; the fingerprint is derived from the input split,
the tokenizer's full definition and the objective's settings (its name included), so a changed tokenizer, objective
or max_seq_len re-tokenizes and nothing else does.
"""

import hashlib
import json


def _fingerprint(dataset, tokenizer, settings: dict) -> str:
    if hasattr(tokenizer, "backend_tokenizer"):
        # Calling the tokenizer sets its truncation/padding state; only the vocabulary and pipeline matter.
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        definition = {k: v for k, v in spec.items() if k not in ("truncation", "padding")}
    else:
        definition = repr(tokenizer)
    payload = json.dumps({"data": dataset._fingerprint, "tokenizer": definition, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


ROWS_PER_PROCESS = 10_000  # below this a process's start-up costs more than its share of the work


def processes(num_proc: int | None, rows: int) -> int | None:
    """data.num_proc (None: every CPU), at most one process per ROWS_PER_PROCESS rows; None for one process."""
    import os

    n = min(num_proc or os.cpu_count() or 1, rows // ROWS_PER_PROCESS)
    return n if n > 1 else None


def cached_map(dataset, encode, tokenizer, settings: dict, num_proc: int | None = None):
    """dataset.map(encode) in batches, replacing every raw column; cached under a fingerprint of all three inputs.
    `settings` must name everything `encode` depends on besides the data and the tokenizer. Token ids are stored in
    the smallest integer type that holds the vocabulary (data/store.py), in parallel processes on large splits."""
    import numpy as np

    from transferlab.data.store import id_dtype

    dtype = id_dtype(len(tokenizer))

    def encode_small(batch):
        out = encode(batch)
        out["input_ids"] = [np.asarray(ids, dtype=dtype) for ids in out["input_ids"]]
        return out

    return dataset.map(
        encode_small,
        batched=True,
        batch_size=2000,
        remove_columns=dataset.column_names,
        new_fingerprint=_fingerprint(dataset, tokenizer, {**settings, "ids": np.dtype(dtype).name}),
        num_proc=processes(num_proc, len(dataset)),
        desc="tokenize",
    )
