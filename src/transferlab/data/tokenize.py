"""Tokenize the raw splits once; datasets' cache makes a re-run skip the work.

The fingerprint is derived from the input split, the tokenizer's full definition and the settings, so a changed
tokenizer or max_seq_len re-tokenizes and nothing else does.
"""

import hashlib
import json


def _fingerprint(dataset, tokenizer, **settings) -> str:
    if hasattr(tokenizer, "backend_tokenizer"):
        # Calling the tokenizer sets its truncation/padding state; only the vocabulary and pipeline matter.
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        definition = {k: v for k, v in spec.items() if k not in ("truncation", "padding")}
    else:
        definition = repr(tokenizer)
    payload = json.dumps({"data": dataset._fingerprint, "tokenizer": definition, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def tokenize_split(dataset, tokenizer, max_len: int, packed: bool, label2id: dict | None):
    """input_ids per text (+ labels). Packed (LM) texts are not truncated: packing cuts the stream into blocks."""
    append_eos = packed and tokenizer.eos_token_id is not None and tokenizer.sep_token_id is None
    eos = tokenizer.eos_token_id

    def encode(batch):
        ids = tokenizer(batch["text"], truncation=not packed, max_length=None if packed else max_len, verbose=False)["input_ids"]
        if append_eos:  # separate documents in the packed stream when the tokenizer does not
            ids = [x if x and x[-1] == eos else x + [eos] for x in ids]
        out = {"input_ids": ids}
        if label2id is not None:
            out["labels"] = [label2id[str(v)] for v in batch["label"]]
        return out

    settings = {"max_len": max_len, "packed": packed, "labels": label2id, "v": 1}
    return dataset.map(
        encode,
        batched=True,
        batch_size=2000,
        remove_columns=dataset.column_names,
        new_fingerprint=_fingerprint(dataset, tokenizer, **settings),
        desc="tokenize",
    )
