"""Seq2seq trains on what HF's Seq2SeqTrainer trains on: the same batch layout (DataCollatorForSeq2Seq), the decoder
reading the start token and then the target shifted right, the same loss; and generation starts from the token that
training started from (bench/seq2seq_quality.py compares the two trainers' exact match)."""

import pytest
import torch
from omegaconf import OmegaConf

from transferlab.models.tokenizer import _train_unigram
from transferlab.objectives.base import IGNORE
from transferlab.objectives.generation import GenerationConfig
from transferlab.objectives.seq2seq import Seq2Seq, Seq2SeqConfig

ROWS = {
    "source": ["mosko", "feathery", "elicit", "abiding", "cat"],
    "target": ["o k s o m", "y r e h t a e f", "t i c i l e", "g n i d i b a", "t a c"],
}


@pytest.fixture(scope="module")
def tok():
    texts = [*ROWS["source"], *ROWS["target"], "the quick brown fox jumps over a lazy dog"] * 20
    return _train_unigram(iter([texts]), vocab_size=160, min_frequency=1, lowercase=False)


@pytest.fixture(scope="module")
def seq2seq(tok, tmp_path_factory):
    import os

    os.environ.setdefault("TRANSFERLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    cfg = OmegaConf.structured(Seq2SeqConfig(max_target_len=16, generation=GenerationConfig(max_new_tokens=8)))
    return Seq2Seq(cfg, OmegaConf.create({"max_seq_len": 16, "num_proc": None}), tok, None)


def _batch(seq2seq):
    from datasets import Dataset

    rows = seq2seq.prepare("train", Dataset.from_dict(ROWS))
    return seq2seq.collator("train")([rows[i] for i in range(len(ROWS["source"]))])


def _model(tok, seq2seq):
    from transferlab.cli.front import compose
    from transferlab.models.build import build_model

    cfg = compose(["model=tiny_t5", "objective=seq2seq", "data=wordnet_definitions", "model.config.dropout_rate=0.0"])
    torch.manual_seed(0)
    return build_model(cfg, seq2seq, tok).eval()


def test_a_batch_equals_hf_data_collator_for_seq2seq_on_the_same_rows(tok, seq2seq):
    from transformers import DataCollatorForSeq2Seq

    batch = _batch(seq2seq)
    sources, targets = tok(ROWS["source"])["input_ids"], tok(ROWS["target"])["input_ids"]
    hf = DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE)(
        [{"input_ids": s, "attention_mask": [1] * len(s), "labels": t} for s, t in zip(sources, targets)]
    )
    for key in ("input_ids", "attention_mask", "labels"):
        assert batch[key].tolist() == hf[key].tolist(), key
    assert all(t[-1] == tok.eos_token_id for t in targets)  # every target ends with </s>, which the loss scores


def test_the_decoder_reads_the_start_token_then_the_target_and_the_loss_is_hfs(tok, seq2seq):
    model = _model(tok, seq2seq)
    batch = _batch(seq2seq)
    seen = {}
    forward = model.forward

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return forward(*args, **kwargs)

    model.forward = spy
    loss = seq2seq.step(model, batch, "train")
    model.forward = forward
    start = model.config.decoder_start_token_id
    assert start == tok.pad_token_id == model.generation_config.decoder_start_token_id
    labels = batch["labels"]
    shifted = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], dim=1)
    assert seen["decoder_input_ids"].tolist() == shifted.masked_fill(shifted == IGNORE, tok.pad_token_id).tolist()
    assert "labels" not in seen and seen["attention_mask"].tolist() == batch["attention_mask"].tolist()
    expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    torch.testing.assert_close(loss, expected)


def test_generation_starts_from_the_token_training_started_from_and_stops_at_the_end_token(tok, seq2seq):
    from transferlab.objectives.generation import generate

    model = _model(tok, seq2seq)
    batch = _batch(seq2seq)
    out = generate(model, batch["input_ids"], batch["attention_mask"], seq2seq.cfg.generation, seed=0)
    assert out[:, 0].tolist() == [model.config.decoder_start_token_id] * len(ROWS["source"])
    assert model.generation_config.eos_token_id in (tok.eos_token_id, [tok.eos_token_id])
    assert model.generation_config.pad_token_id == tok.pad_token_id
