"""The inputs of a sequence-level objective (one prediction per row): a text, or a sentence pair when
data.text_pair_column is set (GLUE's MRPC/QNLI/MNLI, NLI, cross-encoder reranking).

An objective that lists PAIR_FIELDS in its `fields` and encodes, batches and infers through these reads pairs with no
code of its own: a pair is joined by the tokenizer's own template (BERT's [CLS] a [SEP] b [SEP], with segment ids 0/1
where the tokenizer gives them), cut longest-first to max_seq_len, exactly as transformers' text-classification
pipeline joins {"text": a, "text_pair": b}; prepared rows carry the segment ids beside input_ids, and their length
(what bucketing sorts by) counts both texts.
"""

PAIR_FIELDS = {"text": "text_column", "text_pair": "text_pair_column"}  # text_pair: read only when set


def encode_inputs(tokenizer, batch, max_len: int) -> dict:
    """{"input_ids": [...]} of batch["text"], or of each (text, text_pair) with its "token_type_ids" where the
    tokenizer gives them."""
    if "text_pair" not in batch:
        return {"input_ids": tokenizer(batch["text"], truncation=True, max_length=max_len, verbose=False)["input_ids"]}
    encoded = tokenizer(
        list(batch["text"]), list(batch["text_pair"]), truncation="longest_first", max_length=max_len, verbose=False
    )
    return {k: encoded[k] for k in ("input_ids", "token_type_ids") if k in encoded}


def segment_columns(tokenizer, data_cfg) -> tuple:
    """The per-token columns a prepared row keeps besides input_ids: a pair's segment ids, where the tokenizer gives
    them (single texts: none, all 0 is the model's default)."""
    pairs = bool(data_cfg.get("text_pair_column"))
    return ("token_type_ids",) if pairs and "token_type_ids" in tokenizer.model_input_names else ()


def input_collator(tokenizer, data_cfg, **kwargs):
    """PadCollator for rows prepared with segment_columns: segment ids padded with 0 like the attention mask."""
    from transferlab.objectives.collate import PadCollator

    aligned = {column: 0 for column in segment_columns(tokenizer, data_cfg)}
    return PadCollator(tokenizer.pad_token_id, aligned=aligned, **kwargs)


def input_length(row: dict) -> int:
    """A new row's length in characters, both texts of a pair (infer batches rows of similar length)."""
    return len(row["text"]) + len(row.get("text_pair") or "")


def infer_batch(tokenizer, rows: list, max_len: int, model) -> dict:
    """New rows ({"text"[, "text_pair"]}) encoded and padded as training batched them, on the model's device."""
    from transferlab.objectives.collate import PadCollator, on_device

    batch = {"text": [r["text"] for r in rows]}
    if "text_pair" in rows[0]:
        batch["text_pair"] = [r["text_pair"] for r in rows]
    encoded = encode_inputs(tokenizer, batch, max_len)
    examples = [dict(zip(encoded, values)) for values in zip(*encoded.values())]
    aligned = {"token_type_ids": 0} if "token_type_ids" in encoded else None
    return on_device(PadCollator(tokenizer.pad_token_id, columns=(), aligned=aligned)(examples), model)
