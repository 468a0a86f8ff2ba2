"""data=mix: sources drawn by weight, each prepared on its own and reused, an exact resume of the mixed sampler, the
draws per source in metrics.json, and a weight that is not positive refused before any data is read."""

import json
import random
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import single_thread

from transferlab.cli.front import compose
from transferlab.config.validate import validate
from transferlab.data.mix import DRAWN, Mixed, MixSampler
from transferlab.errors import TransferlabError

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)  # tiny models: one thread is faster

WORDS = "the cat dog sat on a mat red blue car drives fast slow tree green house big small".split()


def _sources(*entries: str) -> str:
    return "data.sources=[" + ", ".join(entries) + "]"


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("mix_texts")
    rng = random.Random(0)
    for name, lines, words in (("wiki", 40, 12), ("notes", 24, 8)):
        (d / f"{name}.txt").write_text("".join(" ".join(rng.choices(WORDS, k=words)) + "\n" for _ in range(lines)))
    return {"wiki": str(d / "wiki.txt"), "notes": str(d / "notes.txt")}


def _lm(texts: dict, *extra: str) -> list:
    return [
        "objective=mlm",
        "model=tiny_bert",
        "data=mix",
        _sources(
            f"{{source: files, train: {texts['wiki']}, weight: 1}}",
            f"{{source: files, train: {texts['notes']}, weight: 3}}",
        ),
        "debug=fast",
        "logger=none",
        "callbacks.progress_bar=false",
        "data.max_seq_len=16",
        "data.batch_size=4",
        "data.max_train_samples=12",
        "tokenizer.vocab_size=200",
        "trainer.deterministic=true",
        *extra,
    ]


def _assemble(overrides: list, run_dir: Path):
    from rich.console import Console

    from transferlab.run.assemble import assemble

    cfg = compose(overrides)
    validate(cfg)
    return cfg, assemble(cfg, run_dir, [], True, Console(stderr=True, quiet=True))


# --- the sampler -------------------------------------------------------------------------------------------------


def _drawn(sampler: MixSampler, epochs: range) -> np.ndarray:
    order = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        order += [i for batch in sampler for i in batch]
    return np.asarray(order)


def test_sources_are_drawn_by_weight_and_each_in_a_fresh_order():
    sizes, weights = [50, 200, 10], [1, 2, 1]
    sampler = MixSampler(sizes, weights, np.zeros(260, dtype=np.uint8), 8, bucket=False, seed=5)
    drawn = _drawn(sampler, range(40))
    assert len(drawn) == 40 * 260  # an epoch draws as many examples as the sources hold together
    source = np.searchsorted([50, 250], drawn, side="right")
    shares = np.bincount(source, minlength=3) / len(drawn)
    assert np.abs(shares - np.array([0.25, 0.5, 0.25])).max() < 0.01
    # within an epoch, the small source (10 examples, ~65 draws) goes round its examples: none twice ahead of another
    sampler.set_epoch(3)
    epoch = np.asarray([i for batch in sampler for i in batch])
    small = np.bincount(epoch[epoch >= 250] - 250, minlength=10)
    assert small.max() - small.min() <= 1 and small.sum() > 50
    # the draw depends on (seed, epoch) alone
    again = MixSampler(sizes, weights, np.zeros(260, dtype=np.uint8), 8, bucket=False, seed=5)
    assert np.array_equal(_drawn(again, range(3)), drawn[: 3 * 260])
    assert not np.array_equal(_drawn(again, [3]), _drawn(again, [4]))


def test_mixed_sampler_resumes_mid_epoch_at_the_same_batches_and_buckets_rows():
    lengths = np.random.default_rng(0).integers(1, 64, 90)
    sampler = MixSampler([30, 60], [2, 1], lengths, 6, bucket=True, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    assert [b.seed for b in full] == [b.seed for b in sampler]
    sampler.resume_at(2, 4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # the skip applies once
    spread = np.mean([np.ptp(lengths[b]) for b in full])  # bucketed: each batch's lengths are close together
    assert spread < 0.5 * np.mean([np.ptp(lengths[b]) for b in np.array_split(np.arange(90), 15)])


def test_a_batch_counts_its_examples_and_tokens_per_source():
    from transferlab.data.buckets import Batch
    from transferlab.data.prepared import Blocks

    wide = Blocks(np.arange(40, dtype=np.uint16).reshape(10, 4), "a")
    other = Blocks(np.arange(60, dtype=np.uint16).reshape(15, 4), "b")
    mixed = Mixed([wide, other], ["a", "b"], [1.0, 1.0])
    indices = Batch([0, 12, 13, 9])
    batch = mixed.__getitems__(indices)
    assert batch.drawn.tolist() == [[2, 8], [2, 8]]
    assert torch.equal(batch[1], torch.tensor([8, 9, 10, 11]))  # item 12 is the other source's third block


# --- config ------------------------------------------------------------------------------------------------------


def test_a_weight_that_is_not_positive_fails_in_one_line_before_any_data_is_read(tmp_path):
    missing = tmp_path / "not_there.txt"  # never opened: the weight is answered first
    for weight in ("0", "-2"):
        entries = _sources(f"{{source: files, train: {missing}}}", "{name: wordnet_corpus, weight: 1}")
        cfg = compose(["objective=mlm", "data=mix", entries, f"data.sources.1.weight={weight}"])
        with pytest.raises(TransferlabError) as e:
            validate(cfg)
        assert str(e.value) == (
            f"data.sources.1.weight={weight} must be a positive number (a source's share of the training draws); "
            "set data.sources.1.weight=1, or drop that source"
        )


def test_a_source_is_its_own_data_config_and_shares_the_batching_keys(texts):
    from transferlab.data.sources import sources

    entries = _sources(
        "{name: wordnet_topics, weight: 2}", f"{{source: files, train: {texts['wiki']}, label_column: y}}"
    )
    cfg = compose(["objective=classification", "data=mix", "data.max_eval_samples=5", entries])
    topics, wiki = sources(cfg)
    assert (topics.label, topics.weight, wiki.label, wiki.weight) == ("wordnet_topics", 2.0, "wiki", 1.0)
    assert topics.data.train.endswith("wordnet_topics/train.jsonl.gz") and topics.data.label_column == "label"
    assert wiki.data.label_column == "y" and wiki.data.text_column == "text"
    assert topics.data.max_eval_samples == wiki.data.max_eval_samples == 5  # the mix's setting reaches every source
    assert topics.data.max_seq_len == wiki.data.max_seq_len == cfg.data.max_seq_len  # the preset's 64 gives way
    with pytest.raises(TransferlabError, match=r"^data.sources.0.max_seq_len: every source of a mix shares"):
        sources(compose(["data=mix", _sources("{name: wordnet_topics, max_seq_len: 32}")]))
    with pytest.raises(TransferlabError, match=r"^data.label_column=y is not read by data=mix"):
        sources(compose(["data=mix", _sources("{name: wordnet_topics}"), "data.label_column=y"]))


# --- training ----------------------------------------------------------------------------------------------------


class Batches(pl.Callback):
    """What each training step trained on (the MLM masks included), by global step."""

    def __init__(self, crash_at: int | None = None):
        self.seen, self.crash_at = {}, crash_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.crash_at:
            raise RuntimeError("killed")
        assert DRAWN not in batch  # the counts never reach the objective
        self.seen[trainer.global_step] = {k: batch[k].clone() for k in ("input_ids", "labels")}


def _fit(cfg, a, batches: Batches, resume_from=None) -> None:
    a.trainer.callbacks.append(batches)
    a.trainer.fit(a.module, datamodule=a.datamodule, ckpt_path=resume_from, weights_only=True)


def test_mixed_training_resumes_exactly_and_reuses_each_sources_prepared_data(texts, tmp_path):
    """Killed after a mid-epoch checkpoint and resumed: the same batches (and masks) as an uninterrupted run, the same
    weights, and the same draws per source. The second and third runs prepare nothing: each source's prepared train
    split (and the validation/test union) is found in the cache."""
    overrides = _lm(texts, "trainer.max_steps=8", "trainer.max_epochs=5", "callbacks.checkpoint.every_n_train_steps=2")
    cfg, ref = _assemble(overrides, tmp_path / "ref")
    assert len(ref.preparation["written"]) == 4  # wiki's train, notes' train, validation, test
    train = ref.datamodule.datasets["train"]
    assert train.labels == ["wiki", "notes"] and len({p.fingerprint for p in train.parts}) == 2
    assert len(train) < 4 * 8  # 8 steps cross an epoch's end
    seen = Batches()
    _fit(cfg, ref, seen)

    cfg, cut = _assemble(overrides, tmp_path / "cut")
    assert cut.preparation["written"] == []  # a second run reuses both sources' prepared splits
    with pytest.raises(RuntimeError, match="killed"):
        _fit(cfg, cut, Batches(crash_at=7))
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 6 and 0 < state["transferlab"]["batches_done"]  # mid-epoch
    assert np.asarray(state["MixDataModule"]["drawn"]).shape == (1, 2, 2)

    cfg, resumed = _assemble([*overrides, f"resume={last}"], tmp_path / "resumed")
    after = Batches()
    _fit(cfg, resumed, after, str(last))
    assert sorted(after.seen) == [6, 7]
    for step in (6, 7):
        for key in ("input_ids", "labels"):
            assert torch.equal(after.seen[step][key], seen.seen[step][key]), (step, key)
    reference = ref.module.model.state_dict()
    for name, tensor in resumed.module.model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert resumed.datamodule.drawn.tolist() == ref.datamodule.drawn.tolist()
    examples = ref.datamodule.drawn[:, 0]
    assert examples.sum() == sum(len(b["input_ids"]) for b in seen.seen.values()) and examples.min() > 0
    assert (ref.datamodule.drawn[:, 1] == 16 * examples).all()  # a packed block is 16 tokens


def test_a_source_alone_finds_its_train_split_prepared_by_the_mix(texts, tmp_path):
    """A source's train split is prepared as that data config alone prepares it: the same cache entry."""
    _assemble(_lm(texts), tmp_path / "first")  # trains and saves a tokenizer both runs below share
    tokenizer = ["tokenizer=pretrained", f"tokenizer.name_or_path={tmp_path / 'first' / 'tokenizer'}"]
    _, mix = _assemble(_lm(texts, *tokenizer), tmp_path / "mix")
    alone = [o for o in _lm(texts, *tokenizer) if not o.startswith(("data=mix", "data.sources="))]
    _, wiki = _assemble([*alone, "data=files", f"data.train={texts['wiki']}"], tmp_path / "wiki")
    assert wiki.datamodule.datasets["train"].fingerprint == mix.datamodule.datasets["train"].parts[0].fingerprint
    assert len(wiki.preparation["written"]) == 2  # its own validation and test; train was in the cache


def test_row_sources_with_their_own_columns_train_a_probe_by_weight(tmp_path):
    """Classification over a CSV and a JSONL that name their columns differently, on a frozen backbone: each
    source's features are cached on their own and drawn by weight; validation and test are scored on the union."""
    rows = [("the cat sleeps on a mat", "animal"), ("a red car drives fast", "vehicle")] * 15
    (tmp_path / "a.csv").write_text("sentence,kind\n" + "".join(f"{t},{k}\n" for t, k in rows))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": t, "label": k}) + "\n" for t, k in rows[:12]))
    overrides = [
        "objective=classification",
        "freeze=backbone",
        "data=mix",
        "debug=fast",
        "logger=none",
        "callbacks.progress_bar=false",
        "trainer.max_steps=3",
        "tokenizer.vocab_size=200",
        "data.batch_size=4",
        _sources(
            f"{{source: files, train: {tmp_path / 'a.csv'}, text_column: sentence, label_column: kind}}",
            f"{{source: files, train: {tmp_path / 'b.jsonl'}, weight: 4}}",
        ),
    ]
    cfg, a = _assemble(overrides, tmp_path / "run")
    train = a.datamodule.datasets["train"]
    assert type(train).__name__ == "Mixed" and [type(p).__name__ for p in train.parts] == ["FeatureRows"] * 2
    from transferlab.run.job import _fit_and_evaluate

    metrics = _fit_and_evaluate(cfg, a, None)
    assert {"val/acc", "test/acc"} <= set(metrics)
    stats = a.datamodule.stats()
    assert stats["validation_a_rows"] + stats["validation_b_rows"] == len(a.datamodule.datasets["validation"])
    assert stats["drawn_a_examples"] + stats["drawn_b_examples"] == 3 * 4
    assert stats["drawn_a_tokens"] > 0 and stats["drawn_b_tokens"] > 0


def test_sources_must_agree_on_a_columns_type(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a cat", "label": "1"}\n{"text": "a car", "label": "2"}\n' * 10)
    (tmp_path / "b.jsonl").write_text('{"text": "a cat", "label": 1}\n{"text": "a car", "label": 2}\n' * 10)
    cfg = compose(
        [
            "data=mix",
            _sources(
                f"{{source: files, train: {tmp_path / 'a.jsonl'}}}", f"{{source: files, train: {tmp_path / 'b.jsonl'}}}"
            ),
        ]
    )
    validate(cfg)
    from transferlab.run.preflight import check_inputs

    with pytest.raises(TransferlabError, match=r"^data.sources.1 \(b\) gives data.train the columns .* every source"):
        check_inputs(cfg, tmp_path / "run")


def test_metrics_json_counts_the_draws_of_each_source(texts, tmp_path, monkeypatch):
    from transferlab.train import main

    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["transferlab-train", *_lm(texts, "trainer.max_steps=5"), f"hydra.run.dir={run}"])
    main()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    drawn = {k: v for k, v in metrics.items() if k.startswith("data/drawn_")}
    assert sorted(drawn) == [
        "data/drawn_notes_examples",
        "data/drawn_notes_tokens",
        "data/drawn_wiki_examples",
        "data/drawn_wiki_tokens",
    ]
    # one epoch (debug=fast) draws as many blocks as the sources hold together, in batches of 4
    train = metrics["data/train_wiki_examples"] + metrics["data/train_notes_examples"]
    assert drawn["data/drawn_wiki_examples"] + drawn["data/drawn_notes_examples"] == train > 4 * 4
    assert drawn["data/drawn_notes_tokens"] == 16 * drawn["data/drawn_notes_examples"]
    assert metrics["data/validation_wiki_rows"] == 4 and metrics["data/validation_notes_rows"] == 2  # 10% of each
