"""The data path: packing, MLM masking, stratified slices, label mapping and bad-file messages."""

import copy
import gzip
import json
import os
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from transferlab.config.schema import DataConfig
from transferlab.data.buckets import BatchSampler
from transferlab.data.loading import load_splits
from transferlab.data.splits import stratified_sample, stratified_take
from transferlab.errors import TransferlabError
from transferlab.models.tokenizer import _train_wordpiece
from transferlab.objectives.base import IGNORE
from transferlab.objectives.classification import Classification, label_vocabulary
from transferlab.objectives.mlm import MaskedLM, MLMCollator, MLMConfig


@pytest.fixture(scope="module")
def wordpiece():
    texts = [
        "a small dog runs",
        "the cat sleeps on a mat",
        "dogs and cats are animals",
        "unbelievable things happen",
    ] * 50
    return _train_wordpiece(iter([texts]), vocab_size=200, min_frequency=1, lowercase=True)


def test_mlm_collator_rates_and_labels(wordpiece):
    torch.manual_seed(0)
    collator = MLMCollator(wordpiece, OmegaConf.structured(MLMConfig()))
    ids = torch.tensor(wordpiece(["the cat sleeps on a mat and a small dog runs"] * 8)["input_ids"])
    blocks = [ids[i % 8] for i in range(4000)]
    batch = collator(blocks)
    original = torch.stack(blocks)
    labels, masked_input = batch["labels"], batch["input_ids"]
    special = collator.special[original]
    chosen = labels != IGNORE
    assert not chosen[special].any()  # [CLS]/[SEP] are never selected
    assert torch.equal(labels[chosen], original[chosen])  # labels hold the original token where chosen
    assert (labels[~chosen] == IGNORE).all()  # and the ignore index everywhere else
    assert torch.equal(masked_input[~chosen], original[~chosen])  # unchosen tokens are untouched
    rate = chosen.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.01
    to_mask = (masked_input == wordpiece.mask_token_id) & chosen
    kept = (masked_input == original) & chosen
    n = chosen.sum()
    assert abs(to_mask.sum() / n - 0.8) < 0.02
    assert abs(kept.sum() / n - 0.1) < 0.02  # kept on purpose (plus rare random == original)


def test_whole_word_masking_masks_all_pieces_of_a_word(wordpiece):
    torch.manual_seed(1)
    collator = MLMCollator(wordpiece, OmegaConf.structured(MLMConfig(whole_word_mask=True)))
    ids = torch.tensor(wordpiece(["catdogs sleepmat runs"])["input_ids"][0])
    pieces = wordpiece.convert_ids_to_tokens(ids.tolist())
    assert any(p.startswith("##") for p in pieces), pieces  # the word is split, so the test means something
    batch = collator([ids] * 3000)
    chosen = batch["labels"] != IGNORE
    cont = torch.tensor([p.startswith("##") for p in pieces])
    for pos in torch.nonzero(cont).flatten().tolist():
        assert torch.equal(chosen[:, pos], chosen[:, pos - 1])  # a piece is chosen iff its word start is


def test_stratified_take_keeps_every_label_and_the_share():
    labels = ["a"] * 900 + ["b"] * 90 + ["c"] * 10
    taken, rest = stratified_take(labels, len(labels), 0.1, seed=0)
    assert isinstance(taken, np.ndarray) and sorted([*taken, *rest]) == list(
        range(1000)
    )  # arrays: corpora have millions
    counts = {k: sum(labels[i] == k for i in taken) for k in "abc"}
    assert counts == {"a": 90, "b": 9, "c": 1}
    again = stratified_take(labels, 1000, 0.1, seed=0)
    assert np.array_equal(again[0], taken) and np.array_equal(again[1], rest)  # fixed seed, same slice
    assert len(stratified_sample(labels, 1000, 37, seed=0)) == 37


def test_length_buckets_yield_every_example_once_per_epoch():
    lengths = np.random.default_rng(0).integers(1, 64, size=1003)
    sampler = BatchSampler(lengths, 16, shuffle=True, bucket=True, seed=0)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(1003))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10  # homogeneous lengths inside a batch (random batches spread ~60)


def test_the_bucket_window_is_the_span_sorted_together():
    """data.bucket_window=w: the epoch's shuffled order is sorted by length in windows of w batches, no further."""
    lengths = np.random.default_rng(1).integers(1, 64, size=200)
    for window in (1, 2, 50):
        sampler = BatchSampler(lengths, 10, shuffle=True, bucket=True, seed=3, window=window)
        rng = np.random.default_rng(3)
        shuffled = rng.permutation(200)
        expected = np.concatenate(
            [w[np.argsort(lengths[w], kind="stable")] for w in np.split(shuffled, range(10 * window, 200, 10 * window))]
        )
        batches = list(sampler)
        assert [i for b in sorted(batches, key=lambda b: expected.tolist().index(b[0])) for i in b] == expected.tolist()
    one = [lengths[b] for b in BatchSampler(lengths, 10, True, True, 3, window=1)]
    assert np.mean([np.ptp(b) for b in one]) > 30  # a window of one batch sorts inside a batch only: random spread


def test_ddp_shards_are_disjoint_and_equal_sized():
    lengths = [5] * 100
    shards = [list(BatchSampler(lengths, 8, True, False, 0, rank=r, world=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 7
    assert {i for b in shards[0] + shards[1] for i in b} == set(range(100))


def test_drop_last_gives_full_batches_of_a_new_random_remainder_each_epoch():
    """compile=true on packed blocks: one batch shape (no short last batch to recompile for)."""
    sampler = BatchSampler(np.zeros(43, np.uint8), 8, shuffle=True, bucket=False, seed=0, drop_last=True)
    left_out = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 5 and all(len(b) == 8 for b in batches)
        seen = [i for b in batches for i in b]
        assert seen == np.random.default_rng(epoch).permutation(43)[:40].tolist()  # each epoch's seeded order, in place
        left_out.append(set(range(43)) - set(seen))
    assert len({frozenset(s) for s in left_out}) > 1  # not the same 3 blocks every epoch
    assert len(BatchSampler(np.zeros(5, np.uint8), 8, True, False, 0, drop_last=True)) == 1  # fewer than a batch: kept


def test_only_compiled_packed_training_drops_the_last_batch():
    from transferlab.data.module import TransferDataModule

    class Blocks(list):
        lengths = None  # packed: every item as long as the others

    class Rows(list):
        lengths = np.arange(1, 44)

    datasets = {"train": Blocks(range(43)), "validation": Blocks(range(43)), "test": Rows(range(43))}
    cfg = OmegaConf.create({"batch_size": 8, "eval_batch_size": 8, "bucket_by_length": False, "num_workers": 0})
    cfg.bucket_window = 50

    class Objective:
        def collator(self, stage):
            return list

    for static, want in ((True, 5), (False, 6)):
        dm = TransferDataModule(datasets, Objective(), cfg, seed=0, static_shapes=static)
        assert len(dm.train_dataloader()) == want
        assert len(dm.val_dataloader()) == 6  # evaluation sees every block
    rows = TransferDataModule({**datasets, "train": Rows(range(43))}, Objective(), cfg, seed=0, static_shapes=True)
    assert len(rows.train_dataloader()) == 6  # padded rows vary in length anyway: nothing dropped


def test_training_batches_are_bucketed_as_the_objective_chooses_unless_data_bucket_by_length_says():
    """data.bucket_by_length=null: evaluation sorted by length, training as Objective.bucket_train says (seq2seq:
    random batches, classification: bucketed); true/false: both stages."""
    from transferlab.data.module import TransferDataModule
    from transferlab.objectives import OBJECTIVES

    lengths = np.random.default_rng(0).integers(1, 64, size=400)

    class Rows(list):
        pass

    Rows.lengths = lengths
    datasets = {split: Rows(range(400)) for split in ("train", "validation")}

    def spread(objective, setting, stage):
        cfg = OmegaConf.create({"batch_size": 16, "eval_batch_size": 16, "bucket_by_length": setting})
        cfg.update(num_workers=0, bucket_window=50)
        dm = TransferDataModule(datasets, objective, cfg, seed=0)
        dm.objective.collator = lambda stage: list
        loader = dm.train_dataloader() if stage == "train" else dm.val_dataloader()
        return np.mean([np.ptp(lengths[b]) for b in loader.batch_sampler])  # random batches spread ~55

    seq2seq = type("S", (OBJECTIVES["seq2seq"],), {"__init__": lambda self: None})()
    classification = type("C", (OBJECTIVES["classification"],), {"__init__": lambda self: None})()
    assert spread(seq2seq, None, "train") > 40 and spread(seq2seq, None, "validation") < 5
    assert spread(classification, None, "train") < 5 and spread(classification, None, "validation") < 5
    assert spread(seq2seq, True, "train") < 5 and spread(classification, False, "train") > 40
    assert spread(classification, False, "validation") > 40


def test_eval_shards_hold_every_example_exactly_once():
    lengths = [5] * 37  # does not divide by 2 ranks nor by the batch size
    shards = [list(BatchSampler(lengths, 8, False, False, 0, rank=r, world=2, pad_ranks=False)) for r in (0, 1)]
    seen = [i for shard in shards for b in shard for i in b]
    assert sorted(seen) == list(range(37))  # no example twice, none left out
    assert [len(s) for s in shards] == [3, 3] and [
        len(BatchSampler(lengths, 8, False, False, 0, r, 2, pad_ranks=False)) for r in (0, 1)
    ] == [3, 3]


def _data_cfg(tmp_path, **kw):
    return OmegaConf.structured(DataConfig(**kw))


def _load(cfg, labeled: bool) -> dict:
    """The splits as the classification (labeled) or an LM objective (text only) loads them."""
    raw, dropped = load_splits(cfg, Classification if labeled else MaskedLM)
    assert dropped == {}
    return raw


def _write(path, lines, raw=False):
    path.write_bytes(lines if raw else "\n".join(lines).encode())
    return str(path)


def test_string_labels_are_mapped_and_test_labels_must_occur_in_train(tmp_path):
    train = _write(
        tmp_path / "train.jsonl", [json.dumps({"text": f"t{i}", "label": "pos" if i % 2 else "neg"}) for i in range(40)]
    )
    test = _write(tmp_path / "test.jsonl", [json.dumps({"text": "x", "label": "neutral"})])
    raw = _load(_data_cfg(tmp_path, train=train, label_column="label"), labeled=True)
    assert set(raw) == {"train", "validation", "test"}  # missing splits carved from train
    assert label_vocabulary(raw["train"]) == {"neg": 0, "pos": 1}
    raw = _load(_data_cfg(tmp_path, train=train, test=test, label_column="label"), labeled=True)
    with pytest.raises(TransferlabError, match="data.test has labels never seen in train: neutral"):
        Classification.check_splits(raw, None)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty"),
        ("bad.jsonl", b'{"text": "ok", "label": "a"}\n{"text": "broken", \n', "bad.jsonl:2: malformed JSON line"),
        ("latin.txt", "caf\u00e9\n".encode("latin-1"), "invalid UTF-8 at byte offset 3"),
        ("nocol.csv", b"sentence,label\nhello,a\n", "has no column 'text'; columns found: 'sentence', 'label'"),
    ],
)
def test_bad_files_fail_with_one_clear_line(tmp_path, name, content, message):
    path = _write(tmp_path / name, content, raw=True)
    label = None if name.endswith(".txt") else "label"
    with pytest.raises(TransferlabError, match=message):
        _load(_data_cfg(tmp_path, train=path, label_column=label), labeled=label is not None)


def test_replace_policy_decodes_bad_bytes(tmp_path):
    path = _write(tmp_path / "latin.txt", "caf\u00e9 au lait\nsecond line\nthird\nfourth\n".encode("latin-1"), raw=True)
    raw = _load(_data_cfg(tmp_path, train=path, encoding_errors="replace", validation_fraction=0.25), labeled=False)
    texts = [t for split in raw.values() for t in split["text"]]
    assert "caf\ufffd au lait" in texts


def test_mlm_masks_follow_the_batch_not_the_process_that_collates_it(wordpiece):
    """Masks are drawn from the batch's own seed (seed, epoch, rank, position): worker processes give the very
    batches the main process gives, a new epoch gives new masks, and evaluation gets the same masks every epoch."""
    from torch.utils.data import DataLoader

    from transferlab.data.prepared import Blocks

    blocks = Blocks(np.random.default_rng(0).integers(5, len(wordpiece), size=(40, 16)).astype(np.uint16))
    collator = MLMCollator(wordpiece, OmegaConf.structured(MLMConfig(whole_word_mask=True)))

    def batches(workers: int, epoch: int, shuffle: bool = True, data=blocks):
        sampler = BatchSampler(np.zeros(40, np.uint8), 8, shuffle=shuffle, bucket=False, seed=3)
        sampler.set_epoch(epoch)
        return list(DataLoader(data, batch_sampler=sampler, collate_fn=collator, num_workers=workers))

    def same(a, b):
        return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in ("input_ids", "labels", "masked_positions"))

    torch.manual_seed(0)
    main = batches(0, epoch=1)
    torch.manual_seed(1)  # the global RNG plays no part
    assert len(main) == 5 and same(main, batches(2, epoch=1))
    alike = Blocks(np.repeat(blocks.blocks[:1], 40, axis=0))  # every block the same: only the masks can differ
    assert not torch.equal(
        batches(0, 1, data=alike)[0]["labels"], batches(0, 2, data=alike)[0]["labels"]
    )  # masked anew
    assert same(batches(0, 1, shuffle=False), batches(2, 2, shuffle=False))  # evaluation: the same masks each time


def test_blank_lines_of_a_text_file_are_paragraph_breaks_not_missing_values(tmp_path):
    path = _write(tmp_path / "corpus.txt", ["first paragraph", "", "second one", "   ", "third", "fourth", "fifth"])
    raw = _load(_data_cfg(tmp_path, train=path, validation_fraction=0.2), labeled=False)
    assert sorted(t for split in raw.values() for t in split["text"]) == [
        "fifth",
        "first paragraph",
        "fourth",
        "second one",
        "third",
    ]


def test_gzip_jsonl_reads(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps({"text": f"x{i}"}) for i in range(10)))
    raw = _load(_data_cfg(tmp_path, train=str(path), validation_fraction=0.2), labeled=False)
    assert len(raw["train"]) + len(raw["validation"]) + len(raw["test"]) == 10


def test_prepared_splits_are_reused_across_runs_and_redone_for_another_tokenizer_or_length(
    tmp_path, wordpiece, monkeypatch
):
    from transferlab.data import tokenize

    path = _write(
        tmp_path / "t.jsonl",
        [json.dumps({"text": f"the cat number {i}", "label": "a" if i % 2 else "b"}) for i in range(50)],
    )
    raw = _load(_data_cfg(tmp_path, train=path, label_column="label"), labeled=True)
    calls = []
    real = tokenize.tokenize
    monkeypatch.setattr(tokenize, "tokenize", lambda *args: calls.append(args[2]) or real(*args))

    def prepare(max_seq_len: int, tokenizer=wordpiece):
        data_cfg = _data_cfg(tmp_path, max_seq_len=max_seq_len)
        objective = Classification(OmegaConf.create({"name": "classification"}), data_cfg, tokenizer, raw["train"])
        return objective.prepare("train", raw["train"])

    first, again = prepare(32), prepare(32)
    assert len(calls) == 1  # the second run found the prepared split before tokenizing anything
    assert np.array_equal(again.ids, first.ids) and np.array_equal(again.columns["labels"], first.columns["labels"])
    assert first[3]["id"] == 3 and first[3]["labels"] == int(first.columns["labels"][3])
    prepare(16)
    assert len(calls) == 2  # a different max_seq_len prepares anew
    other = copy.deepcopy(wordpiece)
    other.add_tokens(["zebra"])
    prepare(32, other)
    assert len(calls) == 3 and calls[-1] is other  # so does a changed tokenizer


def test_a_files_fingerprint_names_the_file_not_the_process_that_loaded_it(tmp_path):
    """Two processes loading one file agree on its fingerprint (so later runs find what the first prepared); a
    changed file gets a new one."""
    import subprocess
    import sys

    path = _write(tmp_path / "corpus.txt", [f"line {i}" for i in range(30)])
    code = (
        "import sys; from transferlab.data.files import read_file; "
        "print(read_file(sys.argv[1], 'train', 'strict')._fingerprint)"
    )
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    prints = [
        subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env=env, check=True).stdout
        for _ in range(2)
    ]
    assert prints[0] == prints[1] and len(prints[0].strip()) == 32
    time.sleep(0.01)
    _write(tmp_path / "corpus.txt", [f"line {i}" for i in range(31)])
    changed = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert changed != prints[0]


def test_missing_values_fail_naming_file_and_line_or_are_dropped_and_counted(tmp_path):
    path = _write(
        tmp_path / "gaps.csv",
        ["text,label", "a cat,animal", ",animal", "a car,", "a bus,vehicle", "a dog,animal", "a van,vehicle"],
    )
    held_out = _write(tmp_path / "held_out.csv", ["text,label", "a cow,animal", "a cab,vehicle"])
    cfg = _data_cfg(tmp_path, train=path, validation=held_out, test=held_out, label_column="label")
    with pytest.raises(
        TransferlabError,
        match=(
            r"gaps.csv\) has empty values: 'text' at line 3; 'label' at line 4; fill them in, or set "
            r"data.missing=drop"
        ),
    ):
        load_splits(cfg, Classification)
    cfg.missing = "drop"
    raw, dropped = load_splits(cfg, Classification)
    assert dropped == {"train": 2}
    assert sorted(raw["train"]["text"]) == ["a bus", "a cat", "a dog", "a van"]
    again, dropped = load_splits(cfg, Classification)  # checked once: the count comes from the record, unread
    assert dropped == {"train": 2} and again["train"]._made is None
    assert sorted(again["train"]["text"]) == ["a bus", "a cat", "a dog", "a van"]
    assert again["train"]._fingerprint == raw["train"]._fingerprint == again["train"]._made._fingerprint
    cfg.missing = "error"  # a setting the record did not pass under: checked again, and it fails again
    with pytest.raises(TransferlabError, match=r"gaps.csv\) has empty values"):
        load_splits(cfg, Classification)


def test_a_checked_file_is_checked_again_when_it_changes_and_named_when_gone(tmp_path):
    path = _write(tmp_path / "t.csv", ["text,label", "a cat,animal", "a car,vehicle"])
    cfg = _data_cfg(tmp_path, train=path, validation=path, test=path, label_column="label")
    first, _ = load_splits(cfg, Classification)
    assert first["train"]._fingerprint == load_splits(cfg, Classification)[0]["train"]._fingerprint
    time.sleep(0.01)
    _write(tmp_path / "t.csv", ["text,label", "a cat,animal", ",vehicle"])  # changed: its record no longer names it
    with pytest.raises(TransferlabError, match=r"t.csv\) has empty values: 'text' at line 3"):
        load_splits(cfg, Classification)
    os.remove(path)
    with pytest.raises(TransferlabError, match=f"data.train: file not found: {path}"):
        load_splits(cfg, Classification)


def test_carved_splits_are_named_before_they_are_cut_and_cut_only_when_read(tmp_path, wordpiece, monkeypatch):
    """A run on prepared data reads no line of text to carve its splits: the carve is named by the parent and the
    settings, drawn only on a cache miss, and then gives exactly the seeded stratified cut."""
    from transferlab.data import splits

    path = _write(
        tmp_path / "t.jsonl", [json.dumps({"text": f"the cat number {i}", "label": "ab"[i % 2]}) for i in range(60)]
    )
    data_cfg = _data_cfg(tmp_path, train=path, label_column="label", max_train_samples=30)
    draws = []
    real = splits.stratified_take
    monkeypatch.setattr(splits, "stratified_take", lambda *a: draws.append(a[1]) or real(*a))

    raw = _load(data_cfg, labeled=True)
    fingerprints = {split: raw[split]._fingerprint for split in raw}
    assert draws == [] and all(ds._made is None for ds in raw.values())  # named, nothing cut
    assert _load(data_cfg, labeled=True)["test"]._fingerprint == fingerprints["test"]  # the same name in any run
    objective = Classification(OmegaConf.create({"name": "classification"}), data_cfg, wordpiece, raw["train"])
    assert draws == [60, 54, 48]  # train's labels read: validation's carve, test's from the rest, the 30-row limit
    objective.prepare("test", raw["test"])  # a miss, tokenized from the carve already drawn
    cached = _load(data_cfg, labeled=True)
    objective.prepare("test", cached["test"])  # a hit: nothing drawn, nothing read
    assert draws == [60, 54, 48] and cached["test"]._made is None

    held, rest = real(["ab"[i % 2] for i in range(60)], 60, 0.1, data_cfg.split_seed)
    test, _ = real(["ab"[i % 2] for i in rest], len(rest), 0.1, data_cfg.split_seed)
    assert raw["test"]["text"][:] == [f"the cat number {rest[i]}" for i in test]
    assert len(raw["validation"]) == len(held) == 6 and len(raw["train"]) == 30
    assert raw["validation"]["text"][:] == [f"the cat number {i}" for i in held]


def test_too_few_rows_to_carve_from_fail_in_one_line(tmp_path):
    path = _write(tmp_path / "t.jsonl", [json.dumps({"text": "one", "label": "a"})])
    raw = _load(_data_cfg(tmp_path, train=path, label_column="label"), labeled=True)
    with pytest.raises(TransferlabError, match="data.train has too few examples to carve validation/test splits from"):
        len(raw["train"])


def test_a_packed_objective_on_prepared_data_opens_no_byte_of_its_text(tmp_path, wordpiece, monkeypatch):
    """MLM on a text file whose validation split is carved: the second run finds every prepared split by name, never
    loads the file, never cuts a split and never scans the text (the training RSS of a large corpus, mapped pages
    included, does not grow with its size)."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path / "corpus.txt", [f"the cat number {i} sleeps on a mat" for i in range(300)])
    data_cfg = _data_cfg(tmp_path, train=path, max_seq_len=16)
    objective = MaskedLM(OmegaConf.structured(MLMConfig()), data_cfg, wordpiece, None)
    first = {split: objective.prepare(split, ds) for split, ds in _load(data_cfg, labeled=False).items()}
    import transferlab.data.loading as loading
    import transferlab.data.missing as missing

    scans, loads = [], []
    real_scan, real_load = missing._scan_missing, loading.read_file
    monkeypatch.setattr(missing, "_scan_missing", lambda ds, column: scans.append(column) or real_scan(ds, column))
    monkeypatch.setattr(loading, "read_file", lambda *a, **k: loads.append(a[1]) or real_load(*a, **k))
    again = _load(data_cfg, labeled=False)
    second = {split: objective.prepare(split, ds) for split, ds in again.items()}
    assert loads == [] and scans == []  # the file not opened: its check and its missing values are in the cache
    assert all(ds._made is None for ds in again.values())  # named, found, never cut
    assert {s: b.fingerprint for s, b in first.items()} == {s: b.fingerprint for s, b in second.items()}
