"""A split named before it is made: what lets a run on prepared data open no byte of its text."""

from typing import Callable


class Deferred:
    """A datasets split made on first use (`make()`), named at once: `_fingerprint` is known before it is made.

    Everything else (len, columns, map, select, ...) is the made dataset's and makes it. The prepared-data cache is
    looked up by fingerprint alone, so on a hit the split is never made: no file opened, no index drawn.
    """

    def __init__(self, make: Callable, fingerprint: str):
        self._make, self._fingerprint, self._made = make, fingerprint, None

    def _split(self):
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_make", "_made"):  # copy/pickle probing an unset instance
            raise AttributeError(name)
        return getattr(self._split(), name)

    def __len__(self):
        return len(self._split())

    def __getitem__(self, key):
        return self._split()[key]

    def __iter__(self):
        return iter(self._split())
