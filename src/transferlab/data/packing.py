"""Pack tokenized texts into fixed-length blocks in linear time, with no padding and no lost tokens."""

import numpy as np
import torch


def flat_tokens(dataset, column: str = "input_ids") -> np.ndarray:
    """All token ids of a tokenized datasets.Dataset as one array, read straight from Arrow (no Python loop)."""
    if dataset._indices is not None:  # a select()/shuffle() view: materialise the rows it points at
        dataset = dataset.flatten_indices()
    chunked = dataset.data.column(column)
    return chunked.combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.int64)


def pack_blocks(flat: np.ndarray, block_size: int) -> torch.Tensor:
    """Cut the token stream into [n_blocks, block_size].

    The last block is completed by wrapping around to the stream's start, so no token is dropped and none is
    padding; at most block_size - 1 tokens are seen twice per epoch.
    """
    if flat.size == 0:
        raise ValueError("nothing to pack: every text tokenized to zero tokens")
    n_blocks = -(-flat.size // block_size)
    return torch.from_numpy(np.resize(flat, n_blocks * block_size).reshape(n_blocks, block_size))


def packed_blocks(dataset, tokenizer, block_size: int, settings: dict):
    """Tokenize a text split without truncation (each text closed by the tokenizer's separator, or EOS) and pack
    the stream into Blocks: the LM objectives' whole data path."""
    from transferlab.data.prepared import Blocks
    from transferlab.data.tokenize import cached_map

    append_eos = tokenizer.eos_token_id is not None and tokenizer.sep_token_id is None
    eos = tokenizer.eos_token_id

    def encode(batch):
        ids = tokenizer(batch["text"], truncation=False, verbose=False)["input_ids"]
        if append_eos:  # separate documents in the packed stream when the tokenizer does not
            ids = [x if x and x[-1] == eos else x + [eos] for x in ids]
        return {"input_ids": ids}

    tokenized = cached_map(dataset, encode, tokenizer, {**settings, "packed": True, "v": 2})
    return Blocks(pack_blocks(flat_tokens(tokenized), block_size))
