"""Pack tokenized texts into fixed-length blocks in linear time, with no padding and no lost tokens."""


def packed_blocks(dataset, tokenizer, block_size: int, settings: dict, num_proc: int | None = None):
    """Tokenize a text split without truncation (each text closed by the tokenizer's separator, or EOS) and pack
    the stream into Blocks, memory-mapped from the prepared-data cache (data/store.py): the LM objectives' data path."""
    from transferlab.data.prepared import Blocks

    append_eos = tokenizer.eos_token_id is not None and tokenizer.sep_token_id is None
    eos = tokenizer.eos_token_id

    def encode(batch):
        ids = tokenizer(batch["text"], truncation=False, verbose=False)["input_ids"]
        if append_eos:  # separate documents in the packed stream when the tokenizer does not
            ids = [x if x and x[-1] == eos else x + [eos] for x in ids]
        return {"input_ids": ids}

    settings = {**settings, "packed": True, "v": 3}
    from datasets import IterableDataset

    # (a type check, not an attribute probe: reading any attribute of a carved split would cut it, data/splits.py)
    if isinstance(dataset, IterableDataset):  # a stream (data.streaming=true): packed as it is read, nothing prepared
        from transferlab.data.streaming import StreamBlocks
        from transferlab.data.tokenize import fingerprint

        return StreamBlocks(dataset, encode, block_size, fingerprint(dataset, tokenizer, settings))
    return Blocks.prepare(dataset, encode, tokenizer, settings, block_size, num_proc)
