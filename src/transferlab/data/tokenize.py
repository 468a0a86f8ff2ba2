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


def cached_map(dataset, encode, tokenizer, settings: dict):
    """dataset.map(encode) in batches, replacing every raw column; cached under a fingerprint of all three inputs.
    `settings` must name everything `encode` depends on besides the data and the tokenizer."""
    return dataset.map(
        encode,
        batched=True,
        batch_size=2000,
        remove_columns=dataset.column_names,
        new_fingerprint=_fingerprint(dataset, tokenizer, settings),
        desc="tokenize",
    )
