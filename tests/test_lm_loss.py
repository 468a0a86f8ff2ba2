"""The GPU levers compute what the plain computation does: the chunked linear + cross-entropy (loss and every
gradient, in fp32 and under bf16 autocast), the padded vocabulary (masked in the loss, never generated, loadable by
transformers), MLM's static count of masked rows, and compile=true's one-function step."""

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

from transferlab.models.tokenizer import _train_wordpiece
from transferlab.objectives.base import IGNORE
from transferlab.objectives.clm import CausalLM, CLMConfig
from transferlab.objectives.lm_loss import linear_cross_entropy
from transferlab.objectives.mlm import MaskedLM, MLMConfig, static_count

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def _problem(n=37, d=16, v=50, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    weight = torch.randn(v, d, generator=g, requires_grad=True)
    b = torch.randn(v, generator=g, requires_grad=True) if bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    targets[::5] = IGNORE
    return hidden, weight, b, targets


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("chunk", [1, 8, 36, 37, 1000])
@pytest.mark.parametrize("bias", [True, False])
def test_chunked_loss_and_gradients_equal_cross_entropy(chunk, bias):
    hidden, weight, b, targets = _problem(bias=bias)
    reference = torch.nn.functional.cross_entropy(
        hidden @ weight.t() + (0 if b is None else b), targets, ignore_index=IGNORE
    )
    loss = linear_cross_entropy(hidden, weight, targets, b, chunk=chunk)
    assert torch.allclose(loss, reference, atol=1e-6)
    for got, want in zip(_grads(loss, hidden, weight, b), _grads(reference, hidden, weight, b)):
        assert torch.allclose(got, want, atol=1e-6)


def test_chunked_loss_scales_with_the_upstream_gradient():
    hidden, weight, b, targets = _problem()
    loss = 3.0 * linear_cross_entropy(hidden, weight, targets, b, chunk=8)
    reference = 3.0 * torch.nn.functional.cross_entropy(hidden @ weight.t() + b, targets, ignore_index=IGNORE)
    for got, want in zip(_grads(loss, hidden, weight, b), _grads(reference, hidden, weight, b)):
        assert torch.allclose(got, want, atol=1e-5)


def test_chunked_loss_under_bf16_autocast_matches_the_autocast_reference():
    hidden, weight, b, targets = _problem(n=64, d=32, v=80)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = torch.nn.functional.cross_entropy((hidden @ weight.t() + b).float(), targets, ignore_index=IGNORE)
        loss = linear_cross_entropy(hidden, weight, targets, b, chunk=16)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, reference, atol=1e-3)
    for got, want in zip(_grads(loss, hidden, weight, b), _grads(reference, hidden, weight, b)):
        assert got.dtype == want.dtype
        assert torch.allclose(got, want, atol=2e-2, rtol=2e-2)


def test_chunked_loss_without_gradients_and_with_every_target_ignored():
    hidden, weight, b, targets = _problem()
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, targets, b, chunk=5)
        reference = torch.nn.functional.cross_entropy(hidden @ weight.t() + b, targets, ignore_index=IGNORE)
    assert torch.allclose(loss, reference, atol=1e-6)
    ignored = linear_cross_entropy(hidden, weight, torch.full_like(targets, IGNORE), b, chunk=5)
    assert ignored.item() == 0.0  # no target: no loss and zero gradients, not nan
    assert all(g.abs().sum() == 0 for g in _grads(ignored, hidden, weight, b))


def test_padded_vocabulary_columns_are_masked_out_of_the_loss():
    hidden, weight, b, targets = _problem(v=50)
    padded = torch.cat([weight, torch.randn(14, weight.size(1)) * 5]).detach().requires_grad_()
    padded_bias = torch.cat([b, torch.full((14,), 9.0)]).detach().requires_grad_()
    loss = linear_cross_entropy(hidden, padded, targets, padded_bias, chunk=8, vocab=50)
    reference = torch.nn.functional.cross_entropy(hidden @ weight.t() + b, targets, ignore_index=IGNORE)
    assert torch.allclose(loss, reference, atol=1e-6)
    grad_hidden, grad_weight, _ = _grads(loss, hidden, padded, padded_bias)
    assert torch.allclose(grad_hidden, _grads(reference, hidden)[0], atol=1e-6)
    assert grad_weight[50:].abs().sum() == 0  # the padding rows learn nothing


class Vocab:
    """A tokenizer stand-in: the objectives read its size."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def _gpt2(vocab=100):
    torch.manual_seed(0)
    return GPT2LMHeadModel(
        GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=2,
            vocab_size=vocab,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )


def _loss_and_grads(objective, model, batch):
    model.zero_grad()
    loss = objective.step(model, batch, "train")
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_clm_chunked_loss_equals_the_dense_loss_in_every_parameter():
    model, ids = _gpt2(), torch.randint(0, 100, (3, 16))
    dense = _loss_and_grads(
        CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=0)), None, Vocab(100), None), model, {"input_ids": ids}
    )
    chunked = _loss_and_grads(
        CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=7)), None, Vocab(100), None), model, {"input_ids": ids}
    )
    assert torch.allclose(chunked[0], model(input_ids=ids, labels=ids).loss, atol=1e-6)
    assert torch.allclose(chunked[0], dense[0], atol=1e-6)
    assert chunked[1].keys() == dense[1].keys() and "transformer.wte.weight" in chunked[1]  # tied to the head
    for name in dense[1]:
        assert torch.allclose(chunked[1][name], dense[1][name], atol=1e-6), name


def test_vocab_multiple_pads_masks_suppresses_and_exports(tmp_path):
    from transferlab.models.build import build_model

    cfg = OmegaConf.create(
        {
            "model": {
                "arch": "gpt2",
                "name_or_path": None,
                "random_init": False,
                "config": {"n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 32},
                "revision": None,
                "trust_remote_code": False,
                "attn_implementation": None,
                "vocab_multiple": 64,
                "gradient_checkpointing": False,
                "load_in": None,
            },
            "data": {"max_seq_len": 16},
        }
    )

    class Tokenizer(Vocab):
        pad_token_id = bos_token_id = eos_token_id = 0
        cls_token_id = sep_token_id = None

    objective = CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=0)), None, Tokenizer(100), None)
    model = build_model(cfg, objective, Tokenizer(100))
    assert model.get_input_embeddings().num_embeddings == 128 and model.config.vocab_size == 128
    assert model.generation_config.suppress_tokens == list(range(100, 128))
    ids = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        model.get_input_embeddings().weight[100:] = 50.0  # padding rows that would win every argmax
        unpadded = GPT2LMHeadModel(GPT2Config(**{**model.config.to_dict(), "vocab_size": 100}))
        unpadded.load_state_dict(
            {k: (v[:100] if k.endswith(("wte.weight", "lm_head.weight")) else v) for k, v in model.state_dict().items()}
        )
    model.eval(), unpadded.eval()  # no dropout: the two must see the same activations
    loss = objective.step(model, {"input_ids": ids}, "train")
    chunked = CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=5)), None, Tokenizer(100), None).step(
        model, {"input_ids": ids}, "train"
    )
    assert torch.allclose(loss, unpadded(input_ids=ids, labels=ids).loss, atol=1e-5)
    assert torch.allclose(chunked, loss, atol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    out = loaded.generate(ids[:, :4], max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert loaded.config.vocab_size == 128 and int(out.max()) < 100  # the export never emits a padding id


@pytest.fixture(scope="module")
def wordpiece():
    texts = ["the cat sleeps on a mat", "a small dog runs", "catdogs sleepmat runs fast"] * 50
    return _train_wordpiece(iter([texts]), vocab_size=120, min_frequency=1, lowercase=True)


def _mlm(wordpiece, static):
    objective = MaskedLM(OmegaConf.structured(MLMConfig(mlm_probability=0.3)), None, wordpiece, None)
    objective._collator.static = static
    return objective


def _seeded(rows, seed):
    from transferlab.data.buckets import Batch

    batch = Batch(rows)
    batch.seed = seed
    return batch


def test_static_masked_rows_pad_the_same_draw_and_give_the_same_loss(wordpiece):
    ids = list(torch.tensor(wordpiece(["the cat sleeps on a mat and a small dog runs"] * 6)["input_ids"]))
    dynamic, static = _mlm(wordpiece, False), _mlm(wordpiece, True)
    a, b = dynamic.collator("train")(_seeded(ids, 7)), static.collator("train")(_seeded(ids, 7))
    n = a["masked_positions"].numel()
    rows = static_count(a["input_ids"].numel(), 0.3)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert b["masked_positions"].shape == b["masked_labels"].shape == (rows,) and rows % 8 == 0 and rows > n
    assert torch.equal(b["masked_positions"][:n], a["masked_positions"]) and (b["masked_positions"][n:] == 0).all()
    assert torch.equal(b["masked_labels"][:n], a["labels"].flatten()[a["masked_positions"]])
    assert (b["masked_labels"][n:] == IGNORE).all()
    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=len(wordpiece),
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )
    want, got = _loss_and_grads(dynamic, model, a), _loss_and_grads(static, model, b)
    assert torch.allclose(got[0], want[0], atol=1e-6) and got[1].keys() == want[1].keys()
    for name in want[1]:
        assert torch.allclose(got[1][name], want[1][name], atol=1e-6), name
    for stage_metrics in (dynamic.metrics["train"], static.metrics["train"]):
        assert stage_metrics["acc"].weight.item() == n  # padding rows are not scored
    assert torch.equal(dynamic.metrics["train"]["acc"].compute(), static.metrics["train"]["acc"].compute())


def test_a_draw_beyond_the_static_count_keeps_that_many_masked(wordpiece, monkeypatch):
    import transferlab.objectives.mlm as mlm

    ids = list(torch.tensor(wordpiece(["the cat sleeps on a mat and a small dog runs"] * 6)["input_ids"]))
    monkeypatch.setattr(mlm, "static_count", lambda tokens, p: 8)
    batch = _mlm(wordpiece, True).collator("train")(_seeded(ids, 7))
    original = torch.stack(ids)
    chosen = batch["labels"] != IGNORE
    assert chosen.sum() == 8 and (batch["masked_labels"] != IGNORE).sum() == 8
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])  # the dropped draws are left as they were
    assert torch.equal(batch["masked_labels"], original.flatten()[batch["masked_positions"]])


def test_static_count_covers_the_draw():
    assert static_count(16384, 0.15) == 2736  # BERT-base at 32 x 512: mean 2,458 + 6 sd of 46 = 2,732, up to 8s
    assert static_count(100, 0.15) == 40 and static_count(10, 0.5) == 10  # never more rows than tokens


@pytest.mark.slow  # torch.compile
def test_compiled_steps_equal_the_eager_ones(wordpiece):
    """compile=true's one-function steps (CLM: model + chunked loss; MLM: encoder + sparse head + loss, static rows)."""
    model, ids = _gpt2(), torch.randint(0, 100, (2, 16))
    eager = CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=8)), None, Vocab(100), None)
    compiled = CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=8)), None, Vocab(100), None)
    compiled.compile(model)
    want, got = _loss_and_grads(eager, model, {"input_ids": ids}), _loss_and_grads(compiled, model, {"input_ids": ids})
    assert torch.allclose(got[0], want[0], atol=1e-5)
    for name in want[1]:
        assert torch.allclose(got[1][name], want[1][name], atol=1e-5), name

    rows = list(torch.tensor(wordpiece(["the cat sleeps on a mat and a small dog runs"] * 4)["input_ids"]))
    eager, compiled = _mlm(wordpiece, True), _mlm(wordpiece, False)
    compiled.compile(None)
    assert compiled._collator.static
    batch = eager.collator("train")(_seeded(rows, 3))
    torch.manual_seed(0)
    bert = BertForMaskedLM(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=len(wordpiece),
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )
    want, got = _loss_and_grads(eager, bert, batch), _loss_and_grads(compiled, bert, batch)
    assert torch.allclose(got[0], want[0], atol=1e-5)
    for name in want[1]:
        assert torch.allclose(got[1][name], want[1][name], atol=1e-5), name


def test_top1_is_argmax_ties_and_masked_columns_included():
    """The token accuracy's prediction: argmax's answer everywhere, the first index where maxima tie."""
    from transferlab.objectives.metrics import top1

    logits = torch.randn(3, 7, 50, generator=torch.Generator().manual_seed(0))
    logits[0, 0] = 0.0  # a row of equal logits: index 0
    logits[1, 2, [4, 9, 30]] = 100.0  # three equal maxima: index 4
    logits[2, :, 40:] = float("-inf")  # padding columns masked as masked_padding does
    assert torch.equal(top1(logits), logits.argmax(-1))
    assert top1(logits)[0, 0] == 0 and top1(logits)[1, 2] == 4
