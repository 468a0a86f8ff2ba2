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
