"""The objectives' fast paths compute exactly what the plain computation does, and the optimizer set-up holds."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    ModernBertConfig,
    ModernBertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
)

from transferlab.config.schema import OptimizerConfig, SchedulerConfig
from transferlab.models.tokenizer import _train_wordpiece
from transferlab.objectives.base import IGNORE, Objective
from transferlab.objectives.clm import CausalLM, CLMConfig
from transferlab.objectives.metrics import FiniteMean, Perplexity
from transferlab.objectives.mlm import MaskedLM, MLMConfig

SMALL = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    vocab_size=120,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


@pytest.fixture(scope="module")
def wordpiece():
    texts = ["the cat sleeps on a mat", "a small dog runs", "catdogs sleepmat runs fast"] * 50
    return _train_wordpiece(iter([texts]), vocab_size=120, min_frequency=1, lowercase=True)


def _mlm_batch(wordpiece, seed=0):
    torch.manual_seed(seed)
    objective = MaskedLM(OmegaConf.structured(MLMConfig(mlm_probability=0.3)), None, wordpiece, None)
    ids = torch.tensor(wordpiece(["the cat sleeps on a mat and a small dog runs"] * 6)["input_ids"])
    return objective, objective.collator("train")(list(ids))


def test_collator_lists_the_masked_positions(wordpiece):
    _, batch = _mlm_batch(wordpiece)
    chosen = (batch["labels"] != IGNORE).flatten()
    assert batch["masked_positions"].dtype == torch.long
    assert torch.equal(batch["masked_positions"], chosen.nonzero().squeeze(1))
    assert 0 < batch["masked_positions"].numel() < chosen.numel()


@pytest.mark.parametrize(
    "cls,config",
    [(BertForMaskedLM, BertConfig), (RobertaForMaskedLM, RobertaConfig), (ModernBertForMaskedLM, ModernBertConfig)],
    ids=["bert", "roberta", "modernbert"],
)
def test_sparse_head_loss_and_gradients_equal_the_dense_computation(wordpiece, cls, config):
    objective, batch = _mlm_batch(wordpiece)
    torch.manual_seed(0)
    ids = (
        {"bos_token_id": None, "eos_token_id": None, "cls_token_id": None, "sep_token_id": None}
        if cls is ModernBertForMaskedLM
        else {}
    )
    model = cls(config(**{**SMALL, "vocab_size": len(wordpiece)}, max_position_embeddings=64, pad_token_id=0, **ids))
    results = {}
    for sparse in (True, False):
        objective.sparse_head = sparse
        model.zero_grad()
        loss = objective.step(model, batch, "train")
        loss.backward()
        results[sparse] = (
            loss.detach(),
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        )
    # The dense reference: HF's own loss over every position, with -100 ignored.
    reference = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    (sparse_loss, sparse_grads), (dense_loss, dense_grads) = results[True], results[False]
    assert torch.allclose(sparse_loss, dense_loss, atol=1e-6) and torch.allclose(
        sparse_loss, reference.detach(), atol=1e-6
    )
    assert sparse_grads.keys() == dense_grads.keys()
    for name in sparse_grads:
        assert torch.allclose(sparse_grads[name], dense_grads[name], atol=1e-6), name


def test_clm_loss_shifts_targets_and_equals_hf_loss():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=2,
            vocab_size=100,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    objective = CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=0)), None, range(100), None)  # len(): the vocabulary
    ids = torch.randint(0, 100, (3, 16))
    loss = objective.step(model, {"input_ids": ids}, "train")
    logits = model(input_ids=ids).logits
    sliced = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 100), ids[:, 1:].reshape(-1))
    assert torch.allclose(loss, sliced, atol=1e-6)
    assert torch.allclose(loss, model(input_ids=ids, labels=ids).loss, atol=1e-6)
    perplexity = objective.metrics["train"]["perplexity"]
    assert perplexity.weight.item() == 3 * 15  # predicted tokens: every position but the last of each block
    assert torch.allclose(perplexity.compute(), loss.exp(), atol=1e-4)


def test_finite_mean_gives_non_finite_values_no_weight():
    mean, perplexity = FiniteMean(), Perplexity()
    mean.update(torch.tensor([1.0, float("nan"), 3.0, float("inf")]))
    assert mean.compute().item() == 2.0
    perplexity.update(torch.tensor(2.0), weight=10)
    perplexity.update(torch.tensor(float("nan")), weight=5)  # a batch that on_nan=skip skipped
    assert perplexity.weight.item() == 10 and torch.isclose(perplexity.compute(), torch.tensor(2.0).exp())


def test_weighted_mean_weights_by_batch_size_and_keeps_nan_visible():
    from transferlab.objectives.metrics import WeightedMean

    mean = WeightedMean()
    mean.update(torch.tensor(2.0), 6)
    mean.update(torch.tensor(4.0), 2)
    assert mean.compute().item() == 2.5  # (2*6 + 4*2) / 8; torchmetrics' MeanMetric(nan_strategy="disable") gives 3.0
    mean.update(torch.tensor(float("nan")), 1)
    assert torch.isnan(mean.compute())  # an eval loss that went NaN must show


class _Squares(Objective):
    metrics = {"train": {}, "val": {}, "test": {}}

    def __init__(self):
        pass  # a stand-in: no config, tokenizer or data

    def step(self, model, batch, stage):
        return ((model(batch["x"]) - batch["y"]) ** 2).mean() * 100  # large gradients: clipping has work to do


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_adamw_is_fused_and_gradients_are_clipped(precision, monkeypatch):
    """fused AdamW under fp32 and bf16-mixed (Lightning's AMP plugin alone would refuse to clip it), clipping at the
    configured norm."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from transferlab.freeze.policies import TrainAll
    from transferlab.run.module import TransferModule

    clipped = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        total = real(params, max_norm, *args, **kwargs)
        clipped.append(
            (max_norm, torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item(), total.item())
        )
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    torch.manual_seed(0)
    model, policy = torch.nn.Linear(4, 1), TrainAll(None)
    module = TransferModule(
        policy.apply(model),
        _Squares(),
        policy,
        OmegaConf.structured(OptimizerConfig(lr=0.01)),
        OmegaConf.structured(SchedulerConfig(name="constant", warmup_ratio=0.0)),
    )
    batches = [{"x": torch.randn(8, 4), "y": torch.randn(8, 1) + 5, "n_rows": 8} for _ in range(3)]
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        precision=precision,
        gradient_clip_val=0.5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    assert trainer.optimizers[0].defaults["fused"] is True
    assert len(clipped) == 3
    for max_norm, after, before in clipped:
        assert max_norm == 0.5 and before > 0.5 and after == pytest.approx(0.5, rel=1e-3)


def test_trained_tokenizer_is_cached_across_run_dirs(tmp_path, monkeypatch):
    """A second run dir gets the very same vocabulary from the cache, without training (training is not
    deterministic in `tokenizers`, so re-training would give new ids and defeat the tokenization cache)."""
    from datasets import Dataset

    import transferlab.models.tokenizer as tok

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = OmegaConf.create(
        {
            "tokenizer": {
                "source": "train",
                "vocab_size": 200,
                "min_frequency": 1,
                "lowercase": True,
                "train_samples": None,
            },
            "model": {"arch": "bert", "name_or_path": None, "config": {}},
        }
    )
    train = Dataset.from_dict({"text": [f"the cat number {i} sleeps" for i in range(300)]})
    first = tok.build_tokenizer(cfg, train, tmp_path / "run1", True, MaskedLM)
    monkeypatch.setitem(tok.FAMILIES, "wordpiece", lambda *a: pytest.fail("trained again instead of using the cache"))
    second = tok.build_tokenizer(cfg, train, tmp_path / "run2", True, MaskedLM)
    assert first.get_vocab() == second.get_vocab()
    assert json.loads((tmp_path / "run2" / "tokenizer" / "tokenizer.json").read_text()) == json.loads(
        (tmp_path / "run1" / "tokenizer" / "tokenizer.json").read_text()
    )
    other = OmegaConf.merge(cfg, {"tokenizer": {"vocab_size": 150}})
    monkeypatch.setitem(tok.FAMILIES, "wordpiece", _train_wordpiece)
    assert len(tok.build_tokenizer(other, train, tmp_path / "run3", True, MaskedLM)) != len(
        first
    )  # other settings: trained anew
    seen = []

    def counting(texts, *args):
        batches = [list(b) for b in texts]
        seen.append(sum(map(len, batches)))
        return _train_wordpiece(iter(batches), *args)

    monkeypatch.setitem(tok.FAMILIES, "wordpiece", counting)
    bounded = OmegaConf.merge(cfg, {"tokenizer": {"train_samples": 100}})
    tok.build_tokenizer(bounded, train, tmp_path / "run4", True, MaskedLM)
    assert seen == [100]  # tokenizer.train_samples: trained on a sample of 100 texts, never the whole split
