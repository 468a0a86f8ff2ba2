"""A split of data=mix: one split of every source (data/sources.py), one after another, that still knows its parts."""

from omegaconf import DictConfig

from transferlab.cache import building, cache_key, lookup
from transferlab.data.deferred import Deferred
from transferlab.data.sources import sources
from transferlab.errors import TransferlabError


class Union(Deferred):
    """One split of every source, one after another (made on first use, like any Deferred split), that still knows
    its parts: training prepares each part on its own and draws from them by weight (data/mix.py); validation and
    test are prepared and scored as one."""

    def __init__(self, split: str, parts: list):
        self.split, self.parts = split, parts  # [(Source, its split)]
        super().__init__(self._concatenate, cache_key("mix", split, [ds._fingerprint for _, ds in parts]))

    def _concatenate(self):
        from datasets import concatenate_datasets

        made = []
        for source, ds in self.parts:
            while isinstance(ds, Deferred):  # a cut of a checked file is a Deferred of a Deferred
                ds = ds._split()
            made.append((source, ds))
        first, features = made[0][0], made[0][1].features
        for source, ds in made[1:]:
            if ds.features != features:
                raise TransferlabError(
                    f"data.sources.{source.index} ({source.label}) gives data.{self.split} the columns "
                    f"{dict(ds.features)}, data.sources.{first.index} ({first.label}) {dict(features)}; every source "
                    "must give each column the same type (e.g. labels as text in both files)"
                )
        return concatenate_datasets([ds for _, ds in made])

    def counts(self) -> dict:
        """{source label: its rows in this split}, kept in the cache beside the prepared data: a run on prepared data
        reads no text to count them."""
        import json

        key = cache_key(self._fingerprint, [s.label for s, _ in self.parts], "counts")
        found = lookup("mix", key)
        if found is not None:
            return json.loads((found / "counts.json").read_text())
        counts = {source.label: len(ds) for source, ds in self.parts}
        with building("mix", key) as tmp:
            (tmp / "counts.json").write_text(json.dumps(counts))
        return counts


def load_mix(cfg: DictConfig, objective) -> tuple:
    """(train/validation/test as Unions of the sources' splits, rows dropped per split for a missing value): each
    source loaded by data/loading.py as its own data config."""
    from transferlab.data.loading import SPLITS, load_splits

    parts, dropped = {split: [] for split in SPLITS}, {}
    for source in sources(cfg):
        with source.named():
            raw, lost = load_splits(source.data, objective)
        for split, ds in raw.items():
            parts[split].append((source, ds))
        for split, n in lost.items():
            dropped[split] = dropped.get(split, 0) + n
    return {split: Union(split, p) for split, p in parts.items() if p}, dropped
