"""data.streaming=true: a corpus read as a stream (datasets' IterableDataset), tokenized and packed on the fly.
For hub datasets and local files too large to prepare: nothing is written to disk and nothing is held but a shuffle
buffer (data.shuffle_buffer examples) and the blocks of the batch being built.

- **Sharding.** Every (rank, loader worker) pair reads its own share of the stream: datasets'
  ``split_dataset_by_node`` over ranks x workers (whole files when there are enough, else every n-th example), so no
  example is seen twice in one pass. The shuffle (buffer, seed + pass) comes first, identical on every reader.
- **Packing.** Each share is tokenized in small batches and cut into blocks of max_seq_len tokens, with no padding.
  Batches are built and collated in the worker, their random draws seeded by (seed, pass, share, batch number).
- **No epochs.** Training cycles through the stream, a new shuffle each pass, so trainer.max_steps ends the run.
  Validation and test streams are read once per evaluation, from their start.
- **Exact resume.** Every training batch carries its share's position after it (pass, example, tokens of that
  example already used, batches); a checkpoint holds the position of the last batch trained per share (gathered
  from every rank) and which worker comes next, and a resumed run skips to there without tokenizing what it skips.
"""

import numpy as np
import torch
from torch.utils.data import IterableDataset

from transferlab.data.buckets import Batch
from transferlab.errors import TransferlabError

TOKENIZE_EVERY = 64  # examples tokenized together


def as_is(batch):
    return batch


class StreamBlocks(IterableDataset):
    """Packed blocks from a stream; iterating yields collated batches (see the module docstring)."""

    def __init__(self, source, encode, block_size: int, fingerprint: str):
        self.source, self.encode, self.block_size, self.fingerprint = source, encode, block_size, fingerprint
        self.positions: dict = {}  # share -> [pass, example, used, batches] of the last batch trained on
        self.trained = 0  # batches trained on since the positions were set (picks the worker that comes next)
        self.first_worker = 0

    def configure(self, batch_size, collate, train: bool, seed: int, shuffle_buffer: int, rank: int, world: int):
        self.batch_size, self.collate, self.train = batch_size, collate, train
        self.seed, self.shuffle_buffer, self.rank, self.world = seed, shuffle_buffer, rank, world
        return self

    # --- position: what a checkpoint keeps -------------------------------------------------------------------
    def record(self, batch) -> None:
        """A training batch was trained on: its share has reached the position it carries."""
        share, position = batch["stream"]
        self.positions[share] = position
        self.trained += 1

    def state(self, workers: int, world: int) -> dict:
        return {
            "positions": dict(self.positions),
            "next_worker": (self.first_worker + self.trained) % max(workers, 1),
            "shares": world * max(workers, 1),
            "fingerprint": self.fingerprint,
        }

    def restore(self, state: dict, workers: int, world: int) -> None:
        shares = world * max(workers, 1)
        if state["fingerprint"] != self.fingerprint or state["shares"] != shares:
            raise TransferlabError(
                f"this checkpoint's stream was read by {state['shares']} rank x worker shares of other data or "
                f"settings; resume with the same data, ranks and data.num_workers ({shares} shares now)"
            )
        self.positions = {int(k): list(v) for k, v in state["positions"].items()}
        self.first_worker, self.trained = state["next_worker"], 0

    # --- reading ---------------------------------------------------------------------------------------------
    def _share(self, epoch: int, share: int, shares: int):
        from datasets.distributed import split_dataset_by_node

        stream = self.source
        if self.train:
            stream = stream.shuffle(seed=(self.seed + epoch) % 2**32, buffer_size=self.shuffle_buffer)
        return split_dataset_by_node(stream, rank=share, world_size=shares)

    def _examples(self, epoch: int, share: int, shares: int, skip: int):
        """(index, tokens) of the share's examples from `skip` on, tokenized TOKENIZE_EVERY at a time. Read with
        .iter(), which leaves the sharding to _share (iterating an IterableDataset in a loader worker re-shards it)."""
        index = 0
        for batch in self._share(epoch, share, shares).iter(batch_size=TOKENIZE_EVERY):
            n = len(next(iter(batch.values())))
            if index + n <= skip:  # skipped unread: no tokenization
                index += n
                continue
            if skip > index:
                batch, index = {k: v[skip - index :] for k, v in batch.items()}, skip
            for ids in self.encode(batch)["input_ids"]:
                yield index, np.asarray(ids, dtype=np.int64)
                index += 1

    def _blocks(self, epoch: int, share: int, shares: int, example: int, used: int):
        """(block, position after it) from a position: [example index, tokens of it already used]."""
        size = self.block_size
        buffer, pieces = np.empty(0, dtype=np.int64), []  # pieces: [index, length] of the examples in the buffer
        for index, ids in self._examples(epoch, share, shares, example):
            if index == example and used:
                ids = ids[used:]
            else:
                used = 0
            buffer = np.concatenate([buffer, ids])
            pieces.append([index, len(ids), used])
            while len(buffer) >= size:
                block, buffer = buffer[:size], buffer[size:]
                taken = size
                while pieces and taken >= pieces[0][1]:
                    taken -= pieces.pop(0)[1]
                if pieces:
                    pieces[0][1] -= taken
                    pieces[0][2] += taken
                    after = [pieces[0][0], pieces[0][2]]
                else:
                    after = [index + 1, 0]
                yield torch.from_numpy(block.copy()), after

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        role = (worker + self.first_worker) % workers  # a resumed run continues with the worker that came next
        share, shares = self.rank * workers + role, self.world * workers
        epoch, example, used, number = self.positions.get(share, [0, 0, 0, 0]) if self.train else [0, 0, 0, 0]
        while True:
            batch, after = Batch(), None
            for block, after in self._blocks(epoch, share, shares, example, used):
                batch.append(block)
                if len(batch) == self.batch_size:
                    yield self._collated(batch, share, [epoch, *after, number + 1], number)
                    number += 1
                    batch = Batch()
            if batch and not self.train:
                yield self._collated(batch, share, [epoch, *after, number + 1], number)
            if not self.train:
                return
            if number == 0 and example == 0:
                raise TransferlabError(
                    f"the training stream's share {share} of {shares} holds less than one batch; "
                    "use fewer processes or loader workers, or a smaller data.batch_size"
                )
            epoch, example, used, number = (
                epoch + 1,
                0,
                0,
                0,
            )  # a pass's partial last batch is dropped; the next reshuffles

    def _collated(self, blocks: Batch, share: int, position: list, number: int) -> dict:
        blocks.seed = int(np.random.SeedSequence([self.seed % 2**32, position[0], share, number]).generate_state(1)[0])
        batch = self.collate(blocks)
        batch["stream"] = (share, position)
        return batch


def _identity(data_cfg, split: str) -> str:
    """The stream's name for caches (a trained tokenizer): the file (path, size, mtime) or the hub id and split."""
    from transferlab.cache import cache_key
    from transferlab.data.readers import file_identity

    if data_cfg.source == "hub":
        spec = [data_cfg.path, data_cfg.config_name, data_cfg[split]]
    else:
        spec = file_identity(data_cfg[split])
    return cache_key(*spec, split, "stream", 2)


def _csv_as_text(data_cfg, split: str) -> dict:
    """pandas' options (datasets streams CSV through pandas) that read every cell as the text it is, as
    data/tabular.py does for a file read whole: no NA strings, no type guessing, TSV unquoted unless asked."""
    import csv

    from transferlab.data.tabular import delimiter_of, quoted

    path = data_cfg[split]
    return {
        "delimiter": delimiter_of(path),
        "dtype": str,
        "keep_default_na": False,
        "na_values": ["", *data_cfg.na_values],
        "quoting": csv.QUOTE_MINIMAL if quoted(path, data_cfg.quoting) else csv.QUOTE_NONE,
    }


def load_streams(data_cfg, fields: dict) -> dict:
    """train/validation/test as datasets.IterableDataset with one column per field, blank texts left out. A missing
    validation (test) split is the stream's first data.max_eval_samples examples (default 1,000), after the held-out
    ones, taken out of train."""
    from datasets import load_dataset

    from transferlab.data.loading import SPLITS, _where
    from transferlab.data.readers import file_format
    from transferlab.models.hub import offline_note

    streams = {}
    for split in SPLITS:
        if data_cfg[split] is None:
            continue
        try:
            if data_cfg.source == "hub":
                streams[split] = load_dataset(
                    data_cfg.path, data_cfg.config_name, split=data_cfg[split], streaming=True
                )
            else:
                fmt = file_format(data_cfg[split], data_cfg.format)
                kwargs = _csv_as_text(data_cfg, split) if fmt == "csv" else {}
                streams[split] = load_dataset(
                    fmt, data_files={split: data_cfg[split]}, split=split, streaming=True, **kwargs
                )
            first = next(iter(streams[split]), None)
        except Exception as e:
            note = f"{offline_note('datasets')}; " if data_cfg.source == "hub" else ""
            raise TransferlabError(
                f"data.{split} ({_where(data_cfg, split)}): could not stream it ({note}{type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        if first is None:
            raise TransferlabError(
                f"data.{split} ({_where(data_cfg, split)}) has no examples; give one with at least one example"
            )
        for key in fields.values():
            if data_cfg[key] not in first:
                raise TransferlabError(
                    f"data.{split} ({_where(data_cfg, split)}) has no column '{data_cfg[key]}'; columns "
                    f"found: {', '.join(first)}; set data.{key}=<one of them>"
                )
        names = {data_cfg[key]: field for field, key in fields.items()}
        stream = streams[split].select_columns(list(names)).rename_columns({k: v for k, v in names.items() if k != v})
        streams[split] = stream.filter(lambda ex: all(v is not None and str(v).strip() for v in ex.values()))
    held = data_cfg.max_eval_samples or 1000
    for n, split in enumerate(s for s in ("validation", "test") if s not in streams):
        streams[split] = streams["train"].skip(n * held).take(held)
    carved = sum(1 for s in ("validation", "test") if data_cfg[s] is None)
    if carved:
        streams["train"] = streams["train"].skip(carved * held)
    if data_cfg.max_train_samples:
        streams["train"] = streams["train"].take(data_cfg.max_train_samples)
    for split in ("validation", "test"):
        if data_cfg[split] is not None and data_cfg.max_eval_samples:
            streams[split] = streams[split].take(data_cfg.max_eval_samples)
    for split, stream in streams.items():
        stream._fingerprint = _identity(data_cfg, "train" if data_cfg[split] is None else split) + f"-{split}-{held}"
    return streams


def sample(stream, n: int):
    """The first n examples of a stream as a datasets.Dataset: what a tokenizer trains on."""
    from datasets import Dataset

    rows = list(stream.take(n))
    return Dataset.from_dict({k: [r[k] for r in rows] for k in rows[0]}) if rows else Dataset.from_dict({})
