"""Readers of the file formats datasets does not read itself: one row per example, written to Arrow by datasets as
the file is read (a large file is never held whole)."""

from transferlab.errors import TransferlabError


def from_rows(rows, features, path):
    """datasets.Dataset from the generator `rows(path)`; a TransferlabError it raised (a malformed line) comes
    through as itself, not wrapped by datasets."""
    from datasets import Dataset

    try:
        return Dataset.from_generator(rows, features=features, gen_kwargs={"path": str(path)})
    except Exception as e:
        cause = e
        while cause is not None and not isinstance(cause, TransferlabError):
            cause = cause.__cause__ or cause.__context__
        raise (cause or e) from None


READERS = {"conll": "transferlab.data.conll:read_conll", "squad": "transferlab.data.squad:read_squad"}  # imported when used
FORMATS = tuple(READERS)


def read(fmt: str, path):
    """The file read by transferlab's reader of `fmt`."""
    import importlib

    module, name = READERS[fmt].split(":")
    return getattr(importlib.import_module(module), name)(path)
