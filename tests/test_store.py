"""Prepared data on disk (data/store.py): memory-mapped blocks and rows, the id dtype, the cache and its failures."""

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from transferlab.data import store
from transferlab.data.prepared import Blocks, Rows
from transferlab.errors import TransferlabError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "prepared"


def docs(seed=0, n=101, vocab=100):
    rng = np.random.default_rng(seed)
    return [rng.integers(5, vocab, size=rng.integers(1, 40)).tolist() for _ in range(n)]


class Tokenize:
    """A stand-in for tokenization: writes the given rows into the scratch dir (several record batches, as
    datasets.map writes them) and counts its calls."""

    def __init__(self, ids, **columns):
        self.data, self.calls, self.scratch = {"input_ids": ids, **columns}, 0, None

    def __call__(self, scratch):
        self.calls, self.scratch = self.calls + 1, scratch
        scratch.mkdir(parents=True, exist_ok=True)
        return Dataset.from_dict(self.data).map(
            lambda b: b, batched=True, batch_size=7, cache_file_name=str(scratch / "t.arrow")
        )


def test_blocks_hold_the_whole_stream_in_order_and_wrap_instead_of_padding(cache):
    ids = docs()
    stream = np.concatenate([np.array(d) for d in ids])
    tokenize = Tokenize(ids)
    blocks = store.blocks("a", tokenize, 16, vocab_size=100)
    assert isinstance(blocks, np.memmap) and blocks.dtype == np.uint16 and blocks.shape == (-(-stream.size // 16), 16)
    assert np.array_equal(blocks.reshape(-1), np.resize(stream, blocks.size))  # every token in order; the tail wraps
    item = Blocks(blocks)[3]
    assert item.dtype.is_floating_point is False and item.tolist() == stream[48:64].tolist()
    (prepared,) = cache.iterdir()  # the tokenized Arrow was scratch: only the blocks are kept
    assert (
        sorted(p.name for p in prepared.iterdir()) == ["blocks.npy", "layout.json", "manifest.json"]
        and not tokenize.scratch.exists()
    )


def _mapped_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if (
            len(head) >= 5 and "-" in head[0]
        ):  # a mapping's header line: address range, perms, offset, dev, inode [path]
            inside = line.rstrip().endswith(str(path))
        elif inside and head[0] == "Rss:":
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_items_are_read_without_mapping_the_file_into_the_process(cache):
    """Random items through the mapping would map 64 KiB around each read (the kernel's fault-around); FileRows
    reads them with pread: the same tokens, and the file's mapping stays unresident."""
    rng = np.random.default_rng(0)
    ids = [rng.integers(5, 60_000, size=64).tolist() for _ in range(20_000)]  # 2.5 MB of uint16 blocks
    blocks = Blocks(store.blocks("r", Tokenize(ids), 64, vocab_size=60_000))
    (path,) = cache.glob("*/blocks.npy")
    picked = rng.permutation(len(blocks))[:500]
    assert all(blocks[int(i)].tolist() == ids[i] for i in picked)  # 500 random blocks, exactly the tokens written
    assert blocks[-1].tolist() == ids[-1] and blocks.__getitems__([2, 0])[1].tolist() == ids[0]
    assert _mapped_kb(path) == 0  # not one page of it resident
    _ = [int(blocks.blocks[int(i)][0]) for i in picked]
    assert _mapped_kb(path) > 2_000  # 500 reads at 64 KiB each: all 2.5 MB of it
    with pytest.raises(IndexError, match="index 20000 out of range for 20000 items"):
        blocks[20_000]


def test_a_pickled_reader_opens_its_own_file_and_reads_the_same_items(cache):
    import pickle

    ids = docs(2, n=30)
    rows = Rows(store.rows("p", Tokenize(ids, labels=list(range(30))), ["labels"], 100), ["labels"], "p")
    assert rows[4]["input_ids"].tolist() == ids[4]  # its descriptor is open now; a spawned worker gets none
    copy = pickle.loads(pickle.dumps(rows))
    assert copy._ids._fd is None and [copy[i]["input_ids"].tolist() for i in range(30)] == ids
    assert rows[29]["labels"] == copy[29]["labels"] == 29


def test_a_stream_shorter_than_a_block_repeats_and_a_selected_view_is_read_as_selected():
    view = Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5, 6]]}).select([2, 0])
    assert store.blocks("b", lambda scratch: view, 8, vocab_size=10).tolist() == [[4, 5, 6, 1, 2, 4, 5, 6]]


def test_ids_take_the_smallest_type_that_holds_the_vocabulary():
    assert store.id_dtype(30_522) == np.uint16 and store.id_dtype(65_536) == np.uint16
    assert store.id_dtype(65_537) == np.uint32 and store.id_dtype(250_000) == np.uint32
    big = store.blocks("c", Tokenize([[70_000, 5, 65_536]]), 4, vocab_size=80_000)
    assert big.dtype == np.uint32 and big.tolist() == [[70_000, 5, 65_536, 70_000]]
    with pytest.raises(TransferlabError, match="token id 70000 does not fit uint16"):
        store.blocks("d", Tokenize([[70_000, 5]]), 4, vocab_size=100)


def test_rows_read_back_each_example_and_its_label(cache):
    ids = docs(1, n=50)
    rows = Rows(store.rows("e", Tokenize(ids, labels=list(range(50))), ["labels"], 100), ["labels"], "e")
    assert len(rows) == 50 and rows.lengths.tolist() == [len(d) for d in ids]
    for i in (0, 17, 49):
        item = rows[i]
        assert item["id"] == i and item["input_ids"].dtype == np.int64 and item["input_ids"].tolist() == ids[i]
        assert item["labels"] == i
    assert rows.ids.dtype == np.uint16 and isinstance(rows.ids, np.memmap)
    (prepared,) = cache.iterdir()
    assert sorted(p.name for p in prepared.iterdir()) == [
        "ids.npy",
        "labels.npy",
        "layout.json",
        "manifest.json",
        "offsets.npy",
    ]


def test_a_prepared_split_is_found_before_anything_is_tokenized_and_redone_for_new_settings(cache):
    tokenize = Tokenize(docs(2))
    first = store.blocks("f", tokenize, 16, 100)
    again = store.blocks("f", tokenize, 16, 100)  # same fingerprint and layout: read, nothing tokenized
    assert tokenize.calls == 1 and len(list(cache.iterdir())) == 1 and np.array_equal(first, again)
    store.blocks("f", tokenize, 32, 100)  # another block size
    store.blocks("g", tokenize, 16, 100)  # other data (e.g. another tokenizer's ids)
    assert tokenize.calls == 3 and len(list(cache.iterdir())) == 3


def test_an_interrupted_preparation_leaves_nothing_and_is_redone(cache, monkeypatch):
    tokenize = Tokenize(docs(4))

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(np.lib.format, "open_memmap", dies)
        with pytest.raises(KeyboardInterrupt):
            store.blocks("h", tokenize, 16, 100)
    assert list(cache.iterdir()) == []  # no half-written dir, not even a temp one
    assert store.blocks("h", tokenize, 16, 100).shape[1] == 16 and tokenize.calls == 2


def test_a_killed_preparations_temp_dir_is_never_read_and_is_cleaned_up(cache):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tokenize = Tokenize(docs(7))
    store.blocks("i", tokenize, 16, 100)
    (final,) = cache.iterdir()
    key = final.name
    final.rename(cache / f".{key}.{socket.gethostname()}.{int(dead.stdout)}.x")  # as a kill -9 midway leaves it
    alive = cache / f".{key}.{socket.gethostname()}.{1}.y"  # pid 1 is alive: another process still writing
    alive.mkdir()
    store.blocks("i", tokenize, 16, 100)
    assert tokenize.calls == 2  # redone, not trusted
    assert sorted(p.name for p in cache.iterdir()) == sorted([key, alive.name])


def test_an_unwritable_cache_fails_in_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a directory")
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "a_file" / "cache"))
    with pytest.raises(
        TransferlabError,
        match=f"cannot write prepared data under {tmp_path / 'a_file' / 'cache' / 'prepared'} "
        r"\(Not a directory\); free space there or set TRANSFERLAB_CACHE to another dir",
    ):
        store.blocks("j", Tokenize(docs(5)), 16, 100)


def test_a_full_disk_is_named_with_the_space_needed_and_nothing_is_left(cache, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(
        TransferlabError,
        match=rf"preparing this split needs 4.0 KiB under {cache}, which has 1,000 B free; free space there",
    ):
        store.blocks("k", Tokenize(docs(6)), 16, 100)
    assert list(cache.iterdir()) == []
