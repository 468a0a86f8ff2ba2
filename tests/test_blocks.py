"""find_blocks on tiny random models of every supported architecture: block count and a complete, disjoint split;
and the parameter table built on the same rule (a tied tensor counted once)."""

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf
from torch import nn
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    LlamaModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaModel,
)

from transferlab.errors import TransferlabError
from transferlab.freeze import build_freeze_policy, find_blocks, format_parameter_table, parameter_summary
from transferlab.freeze.lora import FreezeLoRA
from transferlab.freeze.policies import FreezeBackbone

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)  # tiny models: one thread is faster

LAYERS = 3
SIZES = dict(vocab_size=100, pad_token_id=0)
CONFIGS = {
    "bert": lambda: BertConfig(
        hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64, **SIZES
    ),
    "roberta": lambda: RobertaConfig(
        hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=64, **SIZES
    ),
    "distilbert": lambda: DistilBertConfig(dim=32, n_layers=LAYERS, n_heads=2, hidden_dim=64, **SIZES),
    "gpt2": lambda: GPT2Config(
        n_embd=32, n_layer=LAYERS, n_head=2, n_positions=64, bos_token_id=1, eos_token_id=1, **SIZES
    ),
    "llama": lambda: LlamaConfig(
        hidden_size=32,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        **SIZES,
    ),
}

# (class, arch, has pooler, has final norm, head module names, word embeddings tied into the head)
CASES = [
    (BertModel, "bert", True, False, [], False),
    (BertForMaskedLM, "bert", False, False, ["cls"], True),
    (BertForSequenceClassification, "bert", True, False, ["classifier"], False),
    (RobertaModel, "roberta", True, False, [], False),
    (RobertaForMaskedLM, "roberta", False, False, ["lm_head"], True),
    (RobertaForSequenceClassification, "roberta", False, False, ["classifier"], False),
    (DistilBertModel, "distilbert", False, False, [], False),
    (
        DistilBertForMaskedLM,
        "distilbert",
        False,
        False,
        ["vocab_layer_norm", "vocab_projector", "vocab_transform"],
        True,
    ),
    (DistilBertForSequenceClassification, "distilbert", False, False, ["pre_classifier", "classifier"], False),
    (GPT2Model, "gpt2", False, True, [], False),
    (GPT2LMHeadModel, "gpt2", False, True, ["lm_head"], True),
    (GPT2ForSequenceClassification, "gpt2", False, True, ["score"], False),
    (LlamaModel, "llama", False, True, [], False),
    (LlamaForCausalLM, "llama", False, True, ["lm_head"], False),  # Llama unties by default
    (LlamaForSequenceClassification, "llama", False, True, ["score"], False),
]


@pytest.mark.parametrize(("cls", "arch", "pooler", "norm", "head", "tied"), CASES, ids=[c[0].__name__ for c in CASES])
def test_find_blocks_splits_every_parameter_exactly_once(cls, arch, pooler, norm, head, tied):
    torch.manual_seed(0)
    model = cls(CONFIGS[arch]())
    blocks = find_blocks(model)

    assert len(blocks.layers) == LAYERS
    assert len({id(layer) for layer in blocks.layers}) == LAYERS
    assert (blocks.pooler is not None) == pooler
    assert (blocks.final_norm is not None) == norm
    names = {id(m): n for n, m in model.named_modules()}
    assert sorted(names[id(m)] for m in blocks.head) == sorted(head)
    assert blocks.embeddings and all(names[id(m)].split(".")[-1] != "layer" for m in blocks.embeddings)

    parts = blocks.part_params()
    placed = [id(p) for params in parts.values() for p in params]
    assert len(placed) == len(set(placed)), "a parameter sits in two parts"
    assert set(placed) == {id(p) for p in model.parameters()}, "a parameter sits in no part"
    expected_keys = ["embeddings", *(f"layer.{i}" for i in range(LAYERS)), "pooler", "final_norm", "head"]
    assert list(parts) == expected_keys
    assert bool(parts["pooler"]) == pooler and bool(parts["final_norm"]) == norm

    word = model.get_input_embeddings().weight
    assert any(p is word for p in parts["embeddings"])
    output = model.get_output_embeddings() if head else None
    assert (output is not None and output.weight is word) == tied
    if tied:  # the tied tensor is the embeddings' and not the head's: freezing embeddings freezes the output layer
        assert not any(p is word for p in parts["head"])


def test_blocks_are_ordered_bottom_to_top():
    model = BertModel(CONFIGS["bert"]())
    assert find_blocks(model).layers == list(model.encoder.layer)
    gpt2 = GPT2Model(CONFIGS["gpt2"]())
    blocks = find_blocks(gpt2)
    assert blocks.layers == list(gpt2.h) and blocks.final_norm is gpt2.ln_f
    assert blocks.embeddings == [gpt2.wte, gpt2.wpe, gpt2.drop]  # the embedding dropout belongs to the input side


def test_find_blocks_rejects_a_model_it_cannot_map():
    with pytest.raises(TransferlabError, match="not a transformers model"):
        find_blocks(nn.Linear(2, 2))

    model = BertForSequenceClassification(CONFIGS["bert"]())
    model.bert.encoder.extra = nn.Linear(2, 2)  # a parameter outside the blocks that no part can claim
    with pytest.raises(TransferlabError, match=r"outside embeddings/blocks.*bert\.encoder\.extra\.weight"):
        find_blocks(model)


def test_parameter_summary():
    model = BertForSequenceClassification(CONFIGS["bert"]())
    build_freeze_policy(OmegaConf.structured(FreezeBackbone())).apply(model)
    summary = parameter_summary(model)
    head = sum(p.numel() for p in model.classifier.parameters())
    assert summary["trainable"] == head and summary["total"] == sum(p.numel() for p in model.parameters())
    assert summary["share"] == head / summary["total"]
    assert summary["rows"] == [("bert", 0, summary["total"] - head), ("classifier", head, head)]
    table = format_parameter_table(summary).splitlines()
    assert table[0].split() == ["module", "trainable", "total", "share"]
    assert table[-1].split()[:2] == ["total", f"{head:,}"] and len({len(line) for line in table}) == 1

    tied = GPT2LMHeadModel(CONFIGS["gpt2"]())  # lm_head is wte: counted once, under the backbone
    summary = parameter_summary(tied)
    assert summary["total"] == sum(p.numel() for p in tied.parameters())
    assert summary["total"] < sum(p.numel() for _, p in tied.named_parameters(remove_duplicate=False))
    assert [name for name, _, _ in summary["rows"]] == ["transformer"]

    policy = build_freeze_policy(OmegaConf.structured(FreezeLoRA()))
    lora = policy.apply(BertForSequenceClassification(CONFIGS["bert"]()))
    summary = parameter_summary(lora)  # looks through peft to the task model's modules
    assert [name for name, _, _ in summary["rows"]] == ["bert", "classifier"]
    assert summary["trainable"] == sum(p.numel() for p in lora.parameters() if p.requires_grad) > 0
