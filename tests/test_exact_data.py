"""The user's data read exactly as written, and caches that cannot lie (issue: read exactly as written).

Each test is a defect that was reproduced on the earlier code: a cell guessed to be missing or a number, a TSV quote
swallowing lines, a damaged cache entry trusted, an edited file's stale data reused.
"""

import json
import os

import numpy as np
import pytest
from omegaconf import OmegaConf

from transferlab.config.schema import DataConfig
from transferlab.data.files import read_file
from transferlab.data.loading import load_splits
from transferlab.errors import TransferlabError
from transferlab.objectives.classification import Classification, label_vocabulary

NA_STRINGS = ["nan", "NaN", "NA", "N/A", "n/a", "#N/A", "None", "none", "null", "NULL", "-nan", "1.#IND", "<NA>"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))


def _csv(path, header, rows, sep=","):
    path.write_text("\n".join([header, *(sep.join(r) for r in rows)]) + "\n", encoding="utf-8")
    return str(path)


def _cfg(**kw):
    return OmegaConf.structured(DataConfig(label_column="label", **kw))


def _splits(**kw):
    raw, dropped = load_splits(_cfg(**kw), Classification)
    return raw, dropped


def test_na_strings_are_text_in_every_column(tmp_path):
    rows = [(word, label) for word in NA_STRINGS for label in ("None", "nan", "food")]
    train = _csv(tmp_path / "train.csv", "text,label", rows)
    raw, dropped = _splits(train=train, validation=train, test=train, missing="drop")
    assert dropped == {}  # nothing taken for missing
    assert raw["train"]["text"][:] == [r[0] for r in rows]  # every cell as written, in order
    assert label_vocabulary(raw["train"]) == {"None": 0, "food": 1, "nan": 2}  # the class `None` is a class


def test_leading_zeros_and_words_are_labels_as_written(tmp_path):
    rows = [(f"t{i}", label) for i, label in enumerate(["001", "1", "002", "01", "true", "1.0"] * 4)]
    train = _csv(tmp_path / "train.csv", "text,label", rows)
    valid = _csv(tmp_path / "valid.csv", "text,label", [("a", "01"), ("b", "001")])
    raw, _ = _splits(train=train, validation=valid, test=valid)
    assert label_vocabulary(raw["train"]) == {"001": 0, "002": 1, "01": 2, "1": 3, "1.0": 4, "true": 5}
    assert raw["validation"]["label"][:] == ["01", "001"]  # and validation is checked against them as written
    Classification.check_splits(raw, None)


def test_numeric_text_and_ints_with_a_blank_stay_strings(tmp_path):
    rows = [(str(i), str(i % 2)) for i in range(30)] + [("31", "")]
    train = _csv(tmp_path / "train.csv", "text,label", rows)
    raw, dropped = _splits(train=train, validation=train, test=train, missing="drop")
    assert dropped == {"train": 1, "validation": 1, "test": 1}
    assert raw["train"]["text"][:5] == ["0", "1", "2", "3", "4"]
    assert label_vocabulary(raw["train"]) == {"0": 0, "1": 1}  # not 0.0 / 1.0


def test_a_column_that_changes_type_after_many_rows_reads_whole(tmp_path):
    rows = [(f"text {i}", str(i)) for i in range(12_000)] + [("late", "a word")]
    ds = read_file(_csv(tmp_path / "big.csv", "text,label", rows), "train")
    assert len(ds) == 12_001 and ds[12_000] == {"text": "late", "label": "a word"} and ds[7]["label"] == "7"


def test_tsv_is_unquoted_so_a_leading_quote_swallows_nothing(tmp_path):
    rows = [(f'"quoted start {i}' if i % 10 == 0 else f"plain {i}", "x") for i in range(80)]
    path = _csv(tmp_path / "train.tsv", "text\tlabel", rows, sep="\t")
    ds = read_file(path, "train")
    assert len(ds) == 80 and ds[0]["text"] == '"quoted start 0' and ds[1]["text"] == "plain 1"
    # quoting=csv asks for RFC 4180 quotes in a TSV: then the quote does open a field
    quoted = _csv(tmp_path / "q.tsv", "text\tlabel", [('"a\tb"', "x"), ("c", "y")], sep="\t")
    assert read_file(quoted, "train", quoting="csv")["text"][:] == ["a\tb", "c"]


def test_csv_quotes_multiline_cells_and_lines_are_named_as_in_the_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"two\nlines",a\n\nok,b\n,c\n', encoding="utf-8")
    ds = read_file(str(path), "train")
    assert ds["text"][:] == ["two\nlines", "ok", None]
    with pytest.raises(TransferlabError, match=r"has empty values: 'text' at line 6; fill them in"):
        _splits(train=str(path))  # the empty cell is on file line 6, after a 2-line cell and a blank line


def test_na_values_opt_in(tmp_path):
    train = _csv(tmp_path / "train.csv", "text,label", [("NA", "a"), ("real", "b"), ("x", "NA")] * 5)
    ds = read_file(train, "train", na_values=["NA"])
    assert ds["text"][:3] == [None, "real", "x"] and ds["label"][:3] == ["a", "b", None]
    raw, dropped = _splits(train=train, validation=train, test=train, na_values=["NA"], missing="drop")
    assert dropped["train"] == 10 and set(raw["train"]["text"][:]) == {"real"}


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "header_only.csv",
            "text,label\n",
            "header_only.csv has no examples (a header alone?); give a file with at least one example",
        ),
        (
            "dup.csv",
            "text,label,text\na,b,c\n",
            "dup.csv:1: the header names 'text' twice (columns 1 and 3); give each column its own name",
        ),
        (
            "padded.csv",
            " text ,label\na,b\n",
            "has no column 'text'; columns found: ' text ', 'label'; set data.text_column=<one of them>; "
            "the header's ' text ' has spaces around it: rename it in the file, or set data.text_column=' text '",
        ),
        (
            "short.csv",
            "text,label\na,b\nc\n",
            "short.csv:3: 1 fields, but the header has 2; give every line one field per column",
        ),
        (
            "open_quote.csv",
            'text,label\na,b\n"never closed,c\n',
            "open_quote.csv:3: malformed CSV (unexpected end of data)",
        ),
    ],
)
def test_bad_csv_shapes_fail_with_one_clear_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(TransferlabError) as caught:
        _splits(train=str(tmp_path / name))
    assert message in str(caught.value)


def test_upper_case_extension_is_read(tmp_path):
    from transferlab.config.validate import _check_data

    path = _csv(tmp_path / "TRAIN.CSV", "text,label", [("a", "x"), ("b", "y")])
    _check_data(OmegaConf.create({"data": _cfg(train=path, source="files")}))
    assert read_file(path, "train")["label"][:] == ["x", "y"]


def test_arrow_copies_stay_under_the_transferlab_cache(tmp_path, monkeypatch):
    hf = tmp_path / "hf_datasets"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(hf))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", hf)
    _csv(tmp_path / "a.csv", "text,label", [("a", "x")])
    (tmp_path / "a.jsonl").write_text('{"text": "a", "label": "x"}\n')
    for name in ("a.csv", "a.jsonl"):
        read_file(str(tmp_path / name), "train")
    assert not hf.exists() or not any(hf.rglob("*.arrow"))
    assert any((tmp_path / "cache" / "datasets").rglob("*.arrow"))


def test_an_edit_that_keeps_size_and_mtime_is_read_again(tmp_path):
    path = tmp_path / "train.csv"
    _csv(path, "text,label", [("cat", "a"), ("dog", "b")] * 10)
    stat = path.stat()
    raw, _ = _splits(train=str(path), validation=str(path), test=str(path))
    assert raw["train"]["text"][:2] == ["cat", "dog"]
    _csv(path, "text,label", [("cow", "a"), ("dog", "b")] * 10)  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    raw, _ = _splits(train=str(path), validation=str(path), test=str(path))
    assert raw["train"]["text"][:2] == ["cow", "dog"]


def _entries(root, kind):
    return sorted(p for p in (root / kind).iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize(
    "kind, damage", [("checked", "truncate"), ("checked", "delete"), ("missing", "truncate"), ("missing", "garble")]
)
def test_a_damaged_cache_entry_is_reported_and_rebuilt(tmp_path, capsys, kind, damage):
    path = _csv(tmp_path / "train.csv", "text,label", [("cat", "a"), ("dog", "b")] * 10)
    first, _ = _splits(train=path, validation=path, test=path)
    entry = _entries(tmp_path / "cache", kind)[0]
    target = next(p for p in entry.iterdir() if p.name != "manifest.json")
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "delete":
        target.unlink()
    else:
        target.write_bytes(b"x" * target.stat().st_size)
    capsys.readouterr()
    # missing=drop: another checked record, so the split is read and scanned again, through the missing-rows cache
    again, _ = _splits(train=path, validation=path, test=path, missing="drop" if kind == "missing" else "error")
    err = capsys.readouterr().err
    assert f"cache: {entry} is damaged (" in err and "; rebuilding it" in err
    assert again["train"]["text"][:] == first["train"]["text"][:]
    from transferlab.cache import problem

    assert all(problem(e) is None for e in _entries(tmp_path / "cache", kind))  # rebuilt and sealed


def test_cache_seal_catches_every_kind_of_damage(tmp_path):
    from transferlab.cache import building, entry_path, lookup, problem

    os.environ["TRANSFERLAB_CACHE"] = str(tmp_path / "cache")
    with building("things", "k") as tmp:
        np.save(tmp / "ids.npy", np.arange(10_000, dtype=np.uint16))
        (tmp / "sub").mkdir()
        (tmp / "sub" / "meta.json").write_text(json.dumps({"a": 1}))
    entry = entry_path("things", "k")
    assert lookup("things", "k") == entry and problem(entry) is None
    ids = entry / "ids.npy"
    data = ids.read_bytes()
    ids.write_bytes(data[:-2])
    assert problem(entry) == f"ids.npy is {len(data) - 2} bytes, sealed at {len(data)}"
    ids.write_bytes(data[:-2] + b"\xff\xff")
    assert problem(entry) == "ids.npy does not match its checksum"
    ids.write_bytes(data)
    (entry / "stray.tmp").write_text("")
    assert problem(entry) == "stray.tmp was added after sealing"
    (entry / "stray.tmp").unlink()
    (entry / "manifest.json").unlink()
    assert problem(entry).startswith("no manifest.json")
    assert lookup("things", "k") is None and not entry.exists()  # discarded: the caller rebuilds it
    assert [p.name for p in (tmp_path / "cache" / "things").iterdir()] == []  # no temp or trash left


def test_a_failed_build_leaves_nothing(tmp_path):
    from transferlab.cache import building, entry_path

    os.environ["TRANSFERLAB_CACHE"] = str(tmp_path / "cache")
    with pytest.raises(RuntimeError):
        with building("things", "k") as tmp:
            (tmp / "half.npy").write_bytes(b"half")
            raise RuntimeError("killed midway")
    assert not entry_path("things", "k").exists() and list((tmp_path / "cache" / "things").iterdir()) == []


def test_cache_key_is_one_canonical_encoding():
    from transferlab.cache import cache_key

    assert cache_key({"b": 1, "a": [1, 2]}, "x") == cache_key({"a": [1, 2], "b": 1}, "x")
    assert cache_key({"a": 1}) != cache_key({"a": "1"}) and len(cache_key("x")) == 32


def test_a_truncated_prepared_split_is_rebuilt_not_trusted(tmp_path, capsys):
    from datasets import Dataset

    from transferlab.data import store

    os.environ["TRANSFERLAB_CACHE"] = str(tmp_path / "cache")
    calls = []

    def tokenize(scratch):
        calls.append(scratch)
        return Dataset.from_dict({"input_ids": [[5, 6, 7], [8, 9]], "labels": [0, 1]})

    first = {k: np.array(v) for k, v in store.rows("fp", tokenize, ["labels"], 100).items()}
    (entry,) = _entries(tmp_path / "cache", "prepared")
    ids = entry / "ids.npy"
    ids.write_bytes(ids.read_bytes()[:-4])  # cut short, as a full disk or a kill would leave it
    again = store.rows("fp", tokenize, ["labels"], 100)
    assert f"cache: {entry} is damaged (ids.npy is " in capsys.readouterr().err
    assert len(calls) == 2 and all(np.array_equal(first[k], again[k]) for k in first)


def test_a_tokenizer_entry_without_tokenizer_json_is_retrained(tmp_path, capsys):
    from datasets import Dataset

    import transferlab.models.tokenizer as tok
    from transferlab.objectives.mlm import MaskedLM

    os.environ["TRANSFERLAB_CACHE"] = str(tmp_path / "cache")
    cfg = OmegaConf.create(
        {
            "tokenizer": {
                "source": "train",
                "vocab_size": 200,
                "min_frequency": 1,
                "lowercase": False,
                "train_samples": None,
            },
            "model": {"arch": "bert", "name_or_path": None, "config": {}},
        }
    )
    train = Dataset.from_dict({"text": [f"the cat number {i} sleeps" for i in range(300)]})
    train._fingerprint = "tokenizer-damage-test"
    first = tok.build_tokenizer(cfg, train, tmp_path / "run1", True, MaskedLM)
    (entry,) = _entries(tmp_path / "cache", "tokenizers")
    (entry / "tokenizer.json").unlink()
    second = tok.build_tokenizer(cfg, train, tmp_path / "run2", True, MaskedLM)
    assert f"cache: {entry} is damaged (tokenizer.json is missing); rebuilding it" in capsys.readouterr().err
    assert len(second) == len(first) and (entry / "tokenizer.json").is_file()


@pytest.mark.parametrize("value", ["my file (1).csv", "it's.csv", "a,b.csv", "x[1].csv"])
def test_a_path_hydra_cannot_read_gets_the_quoting_that_works(value):
    import shlex

    from transferlab.cli.front import compose

    with pytest.raises(TransferlabError) as caught:
        compose(["data=files", f"data.train=data/{value}"])
    message = str(caught.value)
    assert message.startswith(f"data.train=data/{value}: Hydra cannot read this value as it is")
    suggested = shlex.split(message.rsplit("inside the shell's quotes: ", 1)[1])
    assert compose(["data=files", *suggested]).data.train == f"data/{value}"  # the fix it names works


def test_json_labels_keep_their_own_spelling(tmp_path):
    rows = [{"text": f"t{i}", "label": [True, False, 2.0, 7][i % 4]} for i in range(16)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = str(tmp_path / "train.jsonl")
    raw, _ = _splits(train=path, validation=path, test=path)
    assert label_vocabulary(raw["train"]) == {"2.0": 0, "7": 1, "false": 2, "true": 3}  # not True/False
