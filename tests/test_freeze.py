"""Freeze policies, by behaviour: after real AdamW steps, exactly which tensors moved and which are bit-identical."""

import sys

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf
from torch.optim.lr_scheduler import LambdaLR
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from transferlab.config.rules import check_fields
from transferlab.errors import TransferlabError
from transferlab.freeze import FREEZE_POLICIES, build_freeze_policy
from transferlab.freeze.lora import FreezeLoRA
from transferlab.freeze.policies import FreezeBackbone, FreezeBitFit, FreezeGradual, FreezeLLRD, FreezeNone, FreezeTopK
from transferlab.run.optim import group_schedules

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)  # tiny models: one thread is faster


def bert_config():
    return BertConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=100, pad_token_id=0
    )


def gpt2_config(**kw):
    return GPT2Config(
        n_embd=32,
        n_layer=3,
        n_head=2,
        n_positions=32,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
        **kw,
    )


# Parameter-name prefixes of each part, written out by hand so the tests don't trust find_blocks.
ARCHS = {
    "bert": dict(
        cls=BertForSequenceClassification,
        config=bert_config,
        emb=["bert.embeddings"],
        layer="bert.encoder.layer.{}",
        pooler=["bert.pooler"],
        norm=[],
        head=["classifier"],
        native_pooling="cls",
    ),
    "gpt2": dict(
        cls=GPT2ForSequenceClassification,
        config=gpt2_config,
        layer="transformer.h.{}",
        pooler=[],
        emb=["transformer.wte", "transformer.wpe", "transformer.drop"],
        norm=["transformer.ln_f"],
        head=["score"],
        native_pooling="last",
    ),
}


def under(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layers(spec, *indices):
    return [spec["layer"].format(i) for i in indices]


def policy_of(cfg):
    return build_freeze_policy(OmegaConf.structured(cfg))


def make(cls, config, seed=0):
    torch.manual_seed(seed)
    return cls(config)


def batch_for(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (4, 8), generator=g)
    task = type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__  # peft: look through
    sequence_level = "SequenceClassification" in task or hasattr(model, "featurize")  # a probe classifies sequences
    labels = torch.randint(0, 2, (4,), generator=g) if sequence_level else ids
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


class Run:
    """AdamW over the policy's groups (+ LambdaLR over its multipliers), stepped on one batch with the model's loss."""

    def __init__(self, policy, model, lr=1e-2, weight_decay=0.1, steps_per_epoch=1):
        self.policy, self.model, self.batch = policy, model, batch_for(model)
        groups = policy.param_groups(model, lr, weight_decay, steps_per_epoch)
        self.opt = torch.optim.AdamW(groups)
        self.sched = LambdaLR(self.opt, group_schedules(groups, lambda step: 1.0))
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def step(self, n=2):
        for _ in range(n):
            self.model.train()
            self.policy.set_train_mode(self.model)
            self.loss().backward()
            self.opt.step()
            self.opt.zero_grad()
            self.sched.step()
        return {n for n, p in self.model.named_parameters() if not torch.equal(p, self.before[n])}

    def loss(self):
        if hasattr(self.model, "featurize"):  # a probe (freeze=backbone) gives logits; the objective owns the loss
            logits = self.model(input_ids=self.batch["input_ids"], attention_mask=self.batch["attention_mask"]).logits
            return torch.nn.functional.cross_entropy(logits, self.batch["labels"])
        return self.model(**self.batch).loss

    def names(self, *prefix_lists):
        return {n for n in self.before if any(under(n, prefixes) for prefixes in prefix_lists)}


TRAINS = {  # policy config -> the parts that must change (everything else must be bit-identical)
    "none": (FreezeNone(), lambda s: [s["emb"], layers(s, 0, 1, 2), s["pooler"], s["norm"], s["head"]]),
    "backbone": (FreezeBackbone(pooling="_native"), lambda s: [s["head"]]),  # the pooling its HF class computes
    "top_k": (FreezeTopK(k=1), lambda s: [layers(s, 2), s["pooler"], s["norm"], s["head"]]),
    "top_k2_emb": (
        FreezeTopK(k=2, freeze_embeddings=False),
        lambda s: [s["emb"], layers(s, 1, 2), s["pooler"], s["norm"], s["head"]],
    ),
    "llrd": (FreezeLLRD(), lambda s: [s["emb"], layers(s, 0, 1, 2), s["pooler"], s["norm"], s["head"]]),
}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", TRAINS)
def test_policy_trains_exactly_its_parts(arch, case):
    spec, (cfg, parts) = ARCHS[arch], TRAINS[case]
    if getattr(cfg, "pooling", None) == "_native":
        cfg = FreezeBackbone(pooling=spec["native_pooling"])
    policy = policy_of(cfg)
    run = Run(policy, policy.apply(make(spec["cls"], spec["config"]())))
    expected = run.names(*parts(spec))
    assert {n for n, p in run.model.named_parameters() if p.requires_grad} == expected
    grouped = {id(p) for g in run.opt.param_groups for p in g["params"]}
    assert grouped == {id(p) for n, p in run.model.named_parameters() if n in expected}
    assert run.step(2) == expected


@pytest.mark.parametrize("arch", ARCHS)
def test_bitfit_trains_biases_and_head(arch):
    spec = ARCHS[arch]
    policy = policy_of(FreezeBitFit())
    run = Run(policy, policy.apply(make(spec["cls"], spec["config"]())))
    assert run.step(2) == {n for n in run.before if n.endswith("bias") or under(n, spec["head"])}


def test_backbone_mlp_trains_the_pooler_too():
    policy = policy_of(FreezeBackbone(head="mlp", pooling="cls"))
    run = Run(policy, policy.apply(make(BertForSequenceClassification, bert_config())))
    assert run.step(2) == run.names(["classifier", "bert.pooler"])


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_backbone_gives_identical_features_and_no_dropout(arch):
    spec = ARCHS[arch]
    policy = policy_of(FreezeBackbone())
    model = policy.apply(make(spec["cls"], spec["config"]()))
    ids = batch_for(model)["input_ids"]
    features = lambda: model.base_model(input_ids=ids).last_hidden_state.detach()  # noqa: E731
    model.eval()
    before = features()
    Run(policy, model).step(2)
    model.train()
    policy.set_train_mode(model)
    assert torch.equal(features(), before)  # in train mode: dropout is off in the frozen backbone
    model.eval()
    assert torch.equal(features(), before)


@pytest.mark.parametrize("arch", ARCHS)
def test_set_train_mode_puts_only_frozen_parts_in_eval(arch):
    spec = ARCHS[arch]
    policy = policy_of(FreezeTopK(k=1))
    model = policy.apply(make(spec["cls"], spec["config"]()))
    model.train()
    policy.set_train_mode(model)
    modes = {n: m.training for n, m in model.named_modules()}
    frozen = [n for n in modes if under(n, spec["emb"] + layers(spec, 0, 1))]
    trained = [n for n in modes if under(n, layers(spec, 2) + spec["head"])]
    assert frozen and not any(modes[n] for n in frozen)
    assert trained and all(modes[n] for n in trained)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradual_unfreezes_top_down_with_exactly_zero_lr(arch):
    spec = ARCHS[arch]
    policy = policy_of(FreezeGradual(interval="step", unfreeze_every=2))
    run = Run(policy, policy.apply(make(spec["cls"], spec["config"]())))
    assert all(p.requires_grad for p in run.model.parameters())  # DDP-safe: nothing is flipped mid-run
    assert sum(len(g["params"]) for g in run.opt.param_groups) == len(run.before)
    top = [spec["pooler"], spec["norm"], spec["head"]]
    assert run.step(2) == run.names(*top)
    assert run.step(2) == run.names(*top, layers(spec, 2))
    assert run.step(2) == run.names(*top, layers(spec, 1, 2))
    # The still-frozen groups did get gradients: their bit-identity comes from lr == 0 (decay factor 1 - 0 * wd == 1).
    run.model(**run.batch).loss.backward()
    assert all(p.grad.abs().sum() > 0 for n, p in run.model.named_parameters() if under(n, layers(spec, 0)))


def test_gradual_epoch_schedule():
    policy = policy_of(FreezeGradual(interval="epoch", unfreeze_every=1))
    model = policy.apply(make(BertForSequenceClassification, bert_config()))
    groups = policy.param_groups(model, 1.0, 0.1, steps_per_epoch=10)
    names = [g["name"].removesuffix(".no_decay") for g in groups]
    multipliers = group_schedules(groups, lambda step: 1.0)
    starts = {name: next(s for s in range(100) if f(s) == 1.0) for name, f in zip(names, multipliers)}
    assert starts == {"head": 0, "pooler": 0, "layer.2": 10, "layer.1": 20, "layer.0": 30, "embeddings": 40}
    assert all(f(s) in (0.0, 1.0) for f in multipliers for s in range(100))


@pytest.mark.parametrize("arch", ARCHS)
def test_llrd_learning_rates(arch):
    spec = ARCHS[arch]
    lr, decay = 0.1, 0.5
    policy = policy_of(FreezeLLRD(decay=decay))
    run = Run(policy, policy.apply(make(spec["cls"], spec["config"]())), lr=lr)
    expected = {"embeddings": lr * decay**4, "layer.0": lr * decay**3, "layer.1": lr * decay**2, "layer.2": lr * decay}
    expected |= {"head": lr} | ({"pooler": lr} if spec["pooler"] else {"final_norm": lr})
    groups = run.opt.param_groups
    assert {g["name"].removesuffix(".no_decay") for g in groups} == set(expected)
    assert all(g["lr"] == expected[g["name"].removesuffix(".no_decay")] for g in groups)
    names = {id(p): n for n, p in run.model.named_parameters()}
    for g in groups:  # no decay exactly on biases and LayerNorm weights
        no_decay = g["name"].endswith(".no_decay")
        assert g["weight_decay"] == (0.0 if no_decay else 0.1)
        assert all(
            (names[id(p)].endswith("bias") or "ln" in names[id(p)] or "LayerNorm" in names[id(p)]) == no_decay
            for p in g["params"]
        )
    assert run.step(2) == set(run.before)


LM_CASES = {  # (task model, config overrides, policy, which parameter names must change)
    "mlm-none": (BertForMaskedLM, {}, FreezeNone(), lambda n: True),
    "mlm-backbone": (BertForMaskedLM, {}, FreezeBackbone(), lambda n: n.startswith("cls.")),  # decoder: tied, frozen
    "mlm-bitfit": (BertForMaskedLM, {}, FreezeBitFit(), lambda n: n.endswith("bias") or n.startswith("cls.")),
    "clm-none": (GPT2LMHeadModel, {}, FreezeNone(), lambda n: True),
    "clm-bitfit": (GPT2LMHeadModel, {}, FreezeBitFit(), lambda n: n.endswith("bias")),  # lm_head is wte: frozen
    "clm-untied-backbone": (
        GPT2LMHeadModel,
        {"tie_word_embeddings": False},
        FreezeBackbone(),
        lambda n: n == "lm_head.weight",
    ),
}


@pytest.mark.parametrize("case", LM_CASES)
def test_masked_and_causal_lm_heads(case):
    cls, overrides, cfg, trains = LM_CASES[case]
    policy = policy_of(cfg)
    config = bert_config() if cls is BertForMaskedLM else gpt2_config(**overrides)
    run = Run(policy, policy.apply(make(cls, config)))
    assert run.step(2) == {n for n in run.before if trains(n)}
    tied = run.model.get_output_embeddings().weight is run.model.get_input_embeddings().weight
    assert tied == (not overrides)  # training kept the tie


@pytest.mark.parametrize(
    ("cfg", "model", "message"),
    [
        (FreezeBackbone(), lambda: GPT2LMHeadModel(gpt2_config()), r"no trainable parameters .*tied"),
        (
            FreezeBackbone(head="mlp"),
            lambda: GPT2ForSequenceClassification(gpt2_config()),
            r"freeze.head=mlp trains the dense layer .* with freeze.pooling=last it has none; use freeze.head=linear",
        ),
        (FreezeBackbone(head="mlp"), lambda: BertForMaskedLM(bert_config()), "has no pooler"),
        (
            FreezeBackbone(pooling="cls"),
            lambda: BertForMaskedLM(bert_config()),
            r"freeze.pooling=cls: BertForMaskedLM's head reads every token",
        ),
        (
            FreezeTopK(k=5),
            lambda: BertForSequenceClassification(bert_config()),
            r"freeze.k=5 but the model has 3 blocks",
        ),
        (
            FreezeLoRA(target_modules=["qurey"]),
            lambda: BertForSequenceClassification(bert_config()),
            r"\['qurey'\] match no linear layer .*choose from: .*query",
        ),
        (
            FreezeBitFit(),
            lambda: LlamaForSequenceClassification(
                LlamaConfig(
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=64,
                    vocab_size=100,
                    pad_token_id=0,
                )
            ),
            "no bias parameters",
        ),
        (FreezeGradual(), lambda: GPT2Model(gpt2_config()), "has no untied head"),
        (FreezeGradual(), lambda: GPT2LMHeadModel(gpt2_config()), "GPT2LMHeadModel has no untied head"),
    ],
    ids=[
        "zero_trainable_tied",
        "mlp_without_dense",
        "mlp_without_pooler",
        "pooling_on_lm",
        "k_too_large",
        "lora_no_match",
        "bitfit_no_bias",
        "no_head",
        "tied_head",
    ],
)
def test_apply_errors(cfg, model, message):
    with pytest.raises(TransferlabError, match=message):
        policy_of(cfg).apply(model())


def test_config_errors(monkeypatch):
    with pytest.raises(TransferlabError, match="one of: none, backbone, top_k, gradual, llrd, bitfit, lora, peft$"):
        build_freeze_policy(OmegaConf.create({"name": "frozen"}))
    # Choices and ranges are declared on each policy's schema and checked with every other field of the config.
    with pytest.raises(TransferlabError, match="freeze.interval=epochs is not one of: epoch, step"):
        check_fields(OmegaConf.structured(FreezeGradual(interval="epochs")), "freeze.")
    with pytest.raises(TransferlabError, match="freeze.k=0 must be >= 1; freeze=backbone trains the head alone"):
        check_fields(OmegaConf.structured(FreezeTopK(k=0)), "freeze.")
    with pytest.raises(TransferlabError, match=r"freeze.decay=1.5 must be in \(0, 1\]"):
        check_fields(OmegaConf.structured(FreezeLLRD(decay=1.5)), "freeze.")
    monkeypatch.setitem(sys.modules, "peft", None)  # as if the [lora] extra were not installed
    with pytest.raises(TransferlabError, match=r"freeze=lora needs peft: pip install 'transferlab\[lora\]'"):
        policy_of(FreezeLoRA()).apply(BertForSequenceClassification(bert_config()))
    assert set(FREEZE_POLICIES) == {"none", "backbone", "top_k", "gradual", "llrd", "bitfit", "lora", "peft"}


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_trains_adapters_and_head_and_exports_merged(arch, tmp_path):
    spec = ARCHS[arch]
    policy = policy_of(FreezeLoRA(r=4, alpha=8, dropout=0.0))
    model = policy.apply(make(spec["cls"], spec["config"]()))
    run = Run(policy, model)
    initial = logits(model.eval(), run.batch)
    changed = run.step(2)
    assert changed and changed == {n for n in run.before if "lora_" in n or ".modules_to_save." in n}
    assert any(".modules_to_save." in n and under(n.removeprefix("base_model.model."), spec["head"]) for n in changed)

    expected = logits(model.eval(), run.batch)
    assert not torch.allclose(expected, initial)  # the adapters did something
    merged, kind = policy.model_for_export(model)
    assert kind == "model" and not hasattr(merged, "peft_config")
    merged.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(loaded, run.batch), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits(model.eval(), run.batch), expected, atol=0, rtol=0)  # the run's model is intact


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_adapter_export_loads_over_a_fresh_base(arch, tmp_path):
    from peft import PeftModel

    spec = ARCHS[arch]
    base = make(spec["cls"], spec["config"]())
    base.save_pretrained(tmp_path / "base")  # stands in for the pretrained checkpoint on the hub
    policy = policy_of(FreezeLoRA(r=4, alpha=8, dropout=0.0, merge_on_export=False))
    model = policy.apply(base)
    run = Run(policy, model)
    run.step(2)
    expected = logits(model.eval(), run.batch)
    adapter, kind = policy.model_for_export(model)
    assert kind == "adapter" and adapter.model is model
    adapter.save_pretrained(tmp_path / "adapter")
    fresh = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    torch.testing.assert_close(logits(loaded, run.batch), expected, atol=1e-5, rtol=0)


# --- Encoder-decoders: two stacks, depth counted per stack ----------------------------------------------------------


def t5_config(**kw):
    from transformers import T5Config

    return T5Config(
        d_model=32,
        d_ff=64,
        num_layers=3,
        num_decoder_layers=2,
        num_heads=2,
        d_kv=16,
        vocab_size=100,
        decoder_start_token_id=0,
        pad_token_id=0,
        dropout_rate=0.0,
        **kw,
    )


def bart_config():
    from transformers import BartConfig

    return BartConfig(
        d_model=32,
        encoder_layers=3,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        vocab_size=100,
        max_position_embeddings=64,
        pad_token_id=0,
    )


def t5(tied: bool = True):
    from transformers import T5ForConditionalGeneration

    config = t5_config()
    config.tie_word_embeddings = tied  # set after construction: T5Config's own argument does not take
    return make(T5ForConditionalGeneration, config)


def test_top_k_trains_the_top_blocks_of_encoder_and_decoder():
    policy = policy_of(FreezeTopK(k=1))
    run = Run(policy, policy.apply(t5()))
    # lm_head is the tied shared embedding: frozen with the embeddings
    assert run.step(2) == run.names(
        ["encoder.block.2", "decoder.block.1", "encoder.final_layer_norm", "decoder.final_layer_norm"]
    )
    with pytest.raises(TransferlabError, match="freeze.k=3 but the model has 2 blocks"):  # the shallower stack bounds k
        policy_of(FreezeTopK(k=3)).apply(t5())


def test_llrd_counts_depth_within_each_stack():
    from transformers import BartForSequenceClassification

    lr, decay = 0.1, 0.5
    policy = policy_of(FreezeLLRD(decay=decay))
    model = policy.apply(make(BartForSequenceClassification, bart_config()))
    lrs = {g["name"].removesuffix(".no_decay"): g["lr"] for g in policy.param_groups(model, lr, 0.1, 1)}
    assert lrs == {
        "embeddings": lr * decay**4,  # below the deeper stack's bottom block
        "encoder.layer.0": lr * decay**3,
        "encoder.layer.1": lr * decay**2,
        "encoder.layer.2": lr * decay,
        "decoder.layer.0": lr * decay**2,
        "decoder.layer.1": lr * decay,
        "head": lr,  # BART has no final norms (its layernorm_embedding belongs to the embeddings)
    }


def test_gradual_unfreezes_each_stack_from_its_top():
    policy = policy_of(FreezeGradual(interval="step", unfreeze_every=1))
    model = policy.apply(t5(tied=False))  # an untied lm_head: the head gradual starts with
    starts = {g["name"].removesuffix(".no_decay"): g["start_step"] for g in policy.param_groups(model, 1.0, 0.0, 1)}
    assert starts == {
        "head": 0,
        "encoder.final_norm": 0,
        "decoder.final_norm": 0,
        "encoder.layer.2": 1,
        "decoder.layer.1": 1,
        "encoder.layer.1": 2,
        "decoder.layer.0": 2,
        "encoder.layer.0": 3,
        "embeddings": 4,
    }
    run = Run(policy, model)
    assert run.step(1) == run.names(["lm_head", "encoder.final_layer_norm", "decoder.final_layer_norm"])
    assert run.step(1) >= run.names(["encoder.block.2", "decoder.block.1"])


def test_frozen_backbone_refuses_an_encoder_decoder_classifier():
    from transformers import BartForSequenceClassification

    with pytest.raises(
        TransferlabError, match="freeze=backbone pools one encoder or decoder; BartForSequenceClassification has both"
    ):
        policy_of(FreezeBackbone()).apply(make(BartForSequenceClassification, bart_config()))


@pytest.mark.parametrize(
    ("cfg", "trains_mode"),
    [
        (FreezeNone(), lambda n: True),
        (
            FreezeTopK(k=1),
            lambda n: not n.startswith(("bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1")),
        ),
    ],
)
def test_fit_start_puts_a_pretrained_model_in_train_mode_except_frozen_parts(cfg, trains_mode):
    """transformers returns from_pretrained models in eval mode and Lightning keeps modes as it finds them: the module
    switches dropout on at fit start, for the parts that train."""
    from omegaconf import OmegaConf as OC

    from transferlab.config.schema import OptimizerConfig, SchedulerConfig
    from transferlab.objectives.classification import Classification
    from transferlab.run.module import TransferModule

    policy = policy_of(cfg)
    model = policy.apply(make(BertForSequenceClassification, bert_config())).eval()  # as from_pretrained leaves it
    objective = Classification.__new__(Classification)
    objective.metrics = torch.nn.ModuleDict()
    module = TransferModule(
        model, objective, policy, OC.structured(OptimizerConfig()), OC.structured(SchedulerConfig())
    )
    module.on_fit_start()
    modes = {
        n: m.training
        for n, m in model.named_modules()
        if n.startswith(("bert.embeddings.dropout", "bert.encoder.layer")) and n.endswith("dropout")
    }
    assert modes and all(mode == trains_mode(n) for n, mode in modes.items())
