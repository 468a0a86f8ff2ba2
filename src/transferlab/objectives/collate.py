"""Batching shared by the row-per-example objectives: dynamic padding (to a multiple of 8 on GPU helps tensor cores),
and the batches of new rows that `infer` runs.

Every batch carries `n_rows` and `n_tokens`, CPU ints counted as it is built: the module weighs losses by the one
and throughput counts the other without reading the device. Imported by the objectives' instances only (it loads
torch)."""

import torch


def generator(examples) -> torch.Generator | None:
    """The random draws of a batch from the sampler come from its own seed (data/buckets.py): the same masks in any
    worker process and after a resume. Examples not from the sampler (a direct call) draw from torch's global RNG."""
    seed = getattr(examples, "seed", None)
    return None if seed is None else torch.Generator().manual_seed(seed)


def padded(rows: list, pad: int, multiple_of: int = 1) -> torch.Tensor:
    """Sequences of varying length as one [len(rows), longest] tensor, right-padded with `pad`."""
    longest = -(-max(len(r) for r in rows) // multiple_of) * multiple_of
    out = torch.full((len(rows), longest), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r)
    return out


class PadCollator:
    """Pads input_ids to the batch's longest row with an attention mask; stacks every other listed column as a
    tensor, pads each `aligned` column (one value per token) with its pad value, and each further `sequences` column
    (a seq2seq target) to its own longest row with its pad value. Eval batches also carry the examples' ids (a
    plain list: Lightning leaves it on the CPU). `n_tokens` counts the inputs and the `sequences` (targets)."""

    def __init__(
        self,
        pad_id: int,
        columns: tuple = ("labels",),
        keep_ids: bool = False,
        multiple_of: int = 1,
        aligned: dict | None = None,
        sequences: dict | None = None,
    ):
        self.pad_id, self.columns, self.keep_ids, self.multiple_of = pad_id, columns, keep_ids, multiple_of
        self.aligned, self.sequences = aligned or {}, sequences or {}

    def __call__(self, examples: list) -> dict:
        longest = max(len(e["input_ids"]) for e in examples)
        longest = -(-longest // self.multiple_of) * self.multiple_of
        input_ids = torch.full((len(examples), longest), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
        for row, e in enumerate(examples):
            input_ids[row, : len(e["input_ids"])] = torch.as_tensor(e["input_ids"])
            attention_mask[row, : len(e["input_ids"])] = 1
        lengths = sum(len(e["input_ids"]) for e in examples)
        lengths += sum(len(e[column]) for e in examples for column in self.sequences)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "n_rows": len(examples), "n_tokens": lengths}
        for column, pad in self.aligned.items():
            batch[column] = torch.full((len(examples), longest), pad, dtype=torch.long)
            for row, e in enumerate(examples):
                batch[column][row, : len(e[column])] = torch.as_tensor(e[column])
        for column, pad in self.sequences.items():
            batch[column] = padded([e[column] for e in examples], pad, self.multiple_of)
        batch.update({c: torch.tensor([e[c] for e in examples]) for c in self.columns})
        if self.keep_ids:
            batch["ids"] = [e["id"] for e in examples]
        return batch


class BlockCollator:
    """Packed blocks are equal-length: stacking is all there is (no padding, no attention mask)."""

    def __call__(self, examples):
        input_ids = torch.stack(examples)
        return {"input_ids": input_ids, "n_rows": len(examples), "n_tokens": input_ids.numel()}


def on_device(batch: dict, model) -> dict:
    """A batch's tensors on the model's device."""
    device = next(model.parameters()).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def by_length(rows: list, length, run, options) -> list:
    """`run(batch, first)` on batches of options.batch_size rows of similar `length` (little padding), `first` the
    index in `rows` of the batch's first row (a generation's seed); the results in the rows' order."""
    order = sorted(range(len(rows)), key=lambda i: length(rows[i]))
    out = [None] * len(rows)
    for start in options.progress(range(0, len(order), options.batch_size)):
        index = order[start : start + options.batch_size]
        with torch.no_grad():
            results = run([rows[i] for i in index], index[0])
        for i, result in zip(index, results):
            out[i] = result
    return out
