"""The one LightningDataModule: tokenized splits in, DataLoaders out, with the objective's collator."""

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from transferlab.data.buckets import BatchSampler
from transferlab.data.packing import flat_tokens, pack_blocks
from transferlab.data.tokenize import tokenize_split


class Sequences(Dataset):
    """(input_ids, label) pairs for classification, held as plain lists for cheap indexing."""

    def __init__(self, tokenized):
        # Read each column once: indexing a datasets Column per example decodes Arrow on every access.
        self.input_ids = tokenized["input_ids"][:]
        self.labels = tokenized["labels"][:]

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, i):
        return self.input_ids[i], self.labels[i]


class Blocks(Dataset):
    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return self.blocks.size(0)

    def __getitem__(self, i):
        return self.blocks[i]


def build_datasets(raw: dict, tokenizer, objective, data_cfg) -> dict:
    """Tokenize every split, then pack (LM) or keep per-example sequences (classification)."""
    label2id = getattr(objective, "label2id", None)
    out = {}
    for split, ds in raw.items():
        tokenized = tokenize_split(ds, tokenizer, data_cfg.max_seq_len, objective.packed, label2id)
        out[split] = Blocks(pack_blocks(flat_tokens(tokenized), data_cfg.max_seq_len)) if objective.packed else Sequences(tokenized)
    return out


class TransferDataModule(pl.LightningDataModule):
    def __init__(self, datasets: dict, collator, data_cfg, seed: int):
        super().__init__()
        self.datasets, self.collator, self.cfg, self.seed = datasets, collator, data_cfg, seed

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.datasets[split]
        lengths = [len(x) for x in ds.input_ids] if isinstance(ds, Sequences) else [1] * len(ds)
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        batch_size = self.cfg.batch_size if train else (self.cfg.eval_batch_size or 2 * self.cfg.batch_size)
        sampler = BatchSampler(
            lengths, batch_size, shuffle=train, bucket=self.cfg.bucket_by_length and isinstance(ds, Sequences),
            seed=self.seed, rank=rank, world=world,
        )
        return DataLoader(
            ds, batch_sampler=sampler, collate_fn=self.collator, num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0, pin_memory=self._on_gpu(),
        )

    def _on_gpu(self) -> bool:
        """Pinned host memory lets the copy to a GPU overlap the previous step."""
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("validation", train=False)

    def test_dataloader(self):
        return self._loader("test", train=False)
