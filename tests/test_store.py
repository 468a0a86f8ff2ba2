"""Prepared data on disk (data/store.py): memory-mapped blocks and rows, the id dtype, the cache and its failures."""

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


def tokenized(ids, **columns):
    # several record batches, as datasets.map writes them
    return Dataset.from_dict({"input_ids": ids, **columns}).map(lambda b: b, batched=True, batch_size=7)


def test_blocks_hold_the_whole_stream_in_order_and_wrap_instead_of_padding():
    ids = docs()
    stream = np.concatenate([np.array(d) for d in ids])
    blocks = store.write_blocks(tokenized(ids), 16, vocab_size=100)
    assert isinstance(blocks, np.memmap) and blocks.dtype == np.uint16 and blocks.shape == (-(-stream.size // 16), 16)
    assert np.array_equal(blocks.reshape(-1), np.resize(stream, blocks.size))  # every token in order; the tail wraps
    item = Blocks(blocks)[3]
    assert item.dtype.is_floating_point is False and item.tolist() == stream[48:64].tolist()


def test_a_stream_shorter_than_a_block_repeats_and_a_selected_view_is_read_as_selected():
    blocks = store.write_blocks(Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5, 6]]}).select([2, 0]), 8, vocab_size=10)
    assert blocks.tolist() == [[4, 5, 6, 1, 2, 4, 5, 6]]


def test_ids_take_the_smallest_type_that_holds_the_vocabulary():
    assert store.id_dtype(30_522) == np.uint16 and store.id_dtype(65_536) == np.uint16
    assert store.id_dtype(65_537) == np.uint32 and store.id_dtype(250_000) == np.uint32
    big = store.write_blocks(tokenized([[70_000, 5, 65_536]]), 4, vocab_size=80_000)
    assert big.dtype == np.uint32 and big.tolist() == [[70_000, 5, 65_536, 70_000]]
    with pytest.raises(TransferlabError, match="token id 70000 does not fit uint16"):
        store.write_blocks(tokenized([[70_000, 5]], ), 4, vocab_size=100)


def test_rows_read_back_each_example_and_its_label(cache):
    ids = docs(1, n=50)
    labels = list(range(50))
    rows = Rows(tokenized(ids, labels=labels), ["labels"], 100)
    assert len(rows) == 50 and rows.lengths.tolist() == [len(d) for d in ids]
    for i in (0, 17, 49):
        item = rows[i]
        assert item["id"] == i and item["input_ids"].dtype == np.int64 and item["input_ids"].tolist() == ids[i]
        assert item["labels"] == i
    assert rows.ids.dtype == np.uint16 and isinstance(rows.ids, np.memmap)
    (prepared,) = cache.iterdir()
    assert sorted(p.name for p in prepared.iterdir()) == ["ids.npy", "labels.npy", "layout.json", "offsets.npy"]


def test_prepared_once_reused_then_redone_for_new_data(cache, monkeypatch):
    data = tokenized(docs(2))
    store.write_blocks(data, 16, 100)
    calls = []
    real = store._values  # called once per record batch while writing
    monkeypatch.setattr(store, "_values", lambda *a: calls.append(1) or real(*a))
    again = store.write_blocks(data, 16, 100)  # same fingerprint and layout: read, not written
    assert calls == [] and len(list(cache.iterdir())) == 1
    store.write_blocks(data, 32, 100)  # another block size
    store.write_blocks(tokenized(docs(3)), 16, 100)  # other data (e.g. another tokenizer's ids)
    assert len(calls) == 2 * 15 and len(list(cache.iterdir())) == 3  # 101 rows in record batches of 7
    assert again.shape[1] == 16


def test_an_interrupted_preparation_leaves_nothing_and_is_redone(cache, monkeypatch):
    data = tokenized(docs(4))

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(np.lib.format, "open_memmap", dies)
        with pytest.raises(KeyboardInterrupt):
            store.write_blocks(data, 16, 100)
    assert list(cache.iterdir()) == []  # no half-written dir, not even a temp one
    assert store.write_blocks(data, 16, 100).shape[1] == 16


def test_an_unwritable_cache_fails_in_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a directory")
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "a_file" / "cache"))
    with pytest.raises(TransferlabError, match=f"cannot write prepared data under {tmp_path / 'a_file' / 'cache' / 'prepared'} "
                       r"\(Not a directory\); free space there or set TRANSFERLAB_CACHE to another dir"):
        store.write_blocks(tokenized(docs(5)), 16, 100)


def test_a_full_disk_is_named_with_the_space_needed_before_anything_is_written(cache, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(TransferlabError, match=rf"preparing this split needs 4.0 KiB under {cache}, which has 1,000 B free; free space there"):
        store.write_blocks(tokenized(docs(6)), 16, 100)
    assert list(cache.iterdir()) == []
