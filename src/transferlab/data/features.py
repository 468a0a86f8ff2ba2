"""Frozen features, computed once: each prepared split through a model's frozen part (``model.featurize``), cached.

A probe (freeze=backbone on a sequence classifier) trains a head over features that never change, so they are
computed in one no-grad pass per split and the head then trains for many cheap epochs on the vectors alone.

The cache lives under ``$TRANSFERLAB_CACHE/features/<key>.npy`` (float32 [examples, features], read memory-mapped).
The key hashes what the features depend on: every frozen tensor of the model, the layout and pooling
(``model.cache_key()``), the prepared split's fingerprint (data, tokenizer, max_seq_len) and the precision. New
weights, data or pooling miss; a re-run, another seed or a sweep's other arms on the same weights hit. A file is
written under a temp name and renamed, so a reader never sees half of one and concurrent writers are safe.
"""

import numpy as np
import torch
from torch.utils.data import Dataset


class FeatureRows(Dataset):
    """Cached features with the split's other columns (labels); item i is {"id": i, "features": ..., ...}."""

    lengths = None  # equal-size vectors: nothing to bucket

    def __init__(self, features, columns: dict):
        self.features, self.columns = features, columns

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return {"id": i, "features": self.features[i], **{c: values[i].item() for c, values in self.columns.items()}}

    @staticmethod
    def collate(examples: list) -> dict:
        batch = {"features": torch.from_numpy(np.stack([e["features"] for e in examples]))}
        batch.update(n_rows=len(examples), n_tokens=0)  # cached features: no token is read
        for column in examples[0]:
            if column not in ("id", "features"):
                batch[column] = torch.tensor([e[column] for e in examples])
        batch["ids"] = [e["id"] for e in examples]
        return batch


def _key(model_key: dict, rows, precision: str) -> str:
    from transferlab.cache import cache_key

    return cache_key({**model_key, "data": rows.fingerprint, "precision": precision, "v": 2})


def _compute(model, rows, collate, batch_size: int, device, autocast) -> np.ndarray:
    order = np.argsort(rows.lengths, kind="stable")  # similar lengths together: little padding
    out = None
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = collate([rows[int(i)] for i in index])
            with autocast():
                segments = batch.get("token_type_ids")  # a sentence pair's, where the tokenizer gives them
                vectors = model.featurize(
                    batch["input_ids"].to(device),
                    batch["attention_mask"].to(device),
                    None if segments is None else segments.to(device),
                )
            vectors = vectors.float().cpu().numpy()
            if out is None:
                out = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
            out[index] = vectors
    finally:
        model.train(was_training)
    return out


def cached_features(
    datasets: dict, model, collate, batch_size: int, device, autocast, precision: str
) -> tuple[dict, dict]:
    """Every split as FeatureRows; also {split: "hit" | "miss"} (what the run log and tests read)."""
    from transferlab.cache import building, entry_path, lookup

    model_key = model.cache_key()  # hashes every frozen tensor: once, not once per split

    def featured(rows) -> tuple:
        key = _key(model_key, rows, precision)
        found = lookup("features", key)
        if found is None:
            with building("features", key) as tmp:
                np.save(tmp / "features.npy", _compute(model, rows, collate, batch_size, device, autocast))
        features = np.load(entry_path("features", key) / "features.npy", mmap_mode="r")
        return FeatureRows(features, rows.columns), found is not None

    out, status = {}, {}
    for split, rows in datasets.items():
        if hasattr(rows, "over"):  # a mix's train split (data/mix.py): each source's features, drawn as before
            parts, hits = zip(*(featured(part) for part in rows.parts))
            out[split], hit = rows.over(list(parts)), all(hits)
        else:
            out[split], hit = featured(rows)
        status[split] = "hit" if hit else "miss"
    return out, status
