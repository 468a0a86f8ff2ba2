"""freeze=backbone on a sequence classifier: pooling, what trains, the feature cache, and exports with the same
logits."""

from contextlib import nullcontext

import pytest
import torch
from conftest import single_thread
from datasets import Dataset
from omegaconf import OmegaConf
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
)

from transferlab.data import store
from transferlab.data.features import cached_features
from transferlab.data.prepared import Rows
from transferlab.errors import TransferlabError
from transferlab.freeze import build_freeze_policy
from transferlab.freeze.layouts import default_pooling, pool
from transferlab.freeze.policies import FreezeBackbone
from transferlab.freeze.probe import load_probe
from transferlab.objectives.collate import PadCollator

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)  # tiny models: one thread is faster


SMALL = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100, pad_token_id=0
)
MODELS = {
    "bert": lambda: BertForSequenceClassification(BertConfig(**SMALL, num_labels=3)),
    "gpt2": lambda: GPT2ForSequenceClassification(
        GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, pad_token_id=0, num_labels=3)
    ),
    "modernbert": lambda: ModernBertForSequenceClassification(
        ModernBertConfig(
            **SMALL,
            num_labels=3,
            classifier_pooling="mean",
            max_position_embeddings=64,
            cls_token_id=1,
            sep_token_id=2,
            bos_token_id=1,
            eos_token_id=2,
        )
    ),
}


def probe_of(arch, seed=0, **freeze):
    torch.manual_seed(seed)
    return build_freeze_policy(OmegaConf.structured(FreezeBackbone(**freeze))).apply(MODELS[arch]())


def padded_batch():
    """Rows of 7, 4 and 2 real tokens, right-padded with 0."""
    ids = torch.zeros((3, 7), dtype=torch.long)
    mask = torch.zeros((3, 7), dtype=torch.long)
    for row, n in enumerate((7, 4, 2)):
        ids[row, :n] = torch.arange(3, 3 + n) + row
        mask[row, :n] = 1
    return ids, mask


def test_pooling_reads_first_mean_and_last_real_token():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # row 0: 0 1 2 3, row 1: 4 5 6 7
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert pool(hidden, mask, "cls").flatten().tolist() == [0.0, 4.0]
    assert pool(hidden, mask, "mean").flatten().tolist() == [1.5, 4.5]
    assert pool(hidden, mask, "last").flatten().tolist() == [3.0, 5.0]


def test_default_pooling_per_architecture():
    assert {arch: default_pooling(MODELS[arch]().config) for arch in MODELS} == {
        "bert": "mean",
        "gpt2": "last",
        "modernbert": "mean",
    }


TRAINED = {  # (arch, freeze overrides) -> the layout, and the parameter-name prefixes that train
    ("gpt2", ()): ("score_on_last", ["score"]),
    ("modernbert", ()): ("prediction_head", ["classifier"]),  # the prediction head under it is part of the features
    ("modernbert", (("pooling", "cls"), ("head", "mlp"))): ("prediction_head", ["classifier", "head"]),
    ("bert", (("pooling", "cls"),)): ("pooler", ["classifier"]),  # the frozen pooler's output is the feature
    ("bert", (("pooling", "cls"), ("head", "mlp"))): ("pooler", ["classifier", "bert.pooler"]),
    ("bert", ()): ("own_linear", ["probe_head"]),  # mean: no HF class computes it for BERT
    ("gpt2", (("pooling", "mean"),)): ("own_linear", ["probe_head"]),
}


@pytest.mark.parametrize("case", TRAINED, ids=lambda c: f"{c[0]}-{'-'.join(v for _, v in c[1]) or 'auto'}")
def test_only_the_head_trains_and_features_never_change(case):
    arch, freeze = case
    layout, prefixes = TRAINED[case]
    probe = probe_of(arch, **dict(freeze))
    assert probe.layout.name == layout
    trainable = {n for n, p in probe.named_parameters() if p.requires_grad}
    assert trainable and all(any(n.startswith(p + ".") for p in prefixes) for n in trainable)
    assert {p.split(".")[0] for p in prefixes} <= {n.split(".")[0] for n in trainable}
    ids, mask = padded_batch()
    before = probe.featurize(ids, mask)
    frozen = {n: p.detach().clone() for n, p in probe.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in probe.parameters() if p.requires_grad], lr=0.1)
    probe.train()
    for _ in range(2):
        torch.nn.functional.cross_entropy(
            probe(input_ids=ids, attention_mask=mask).logits, torch.tensor([0, 1, 2])
        ).backward()
        opt.step()
        opt.zero_grad()
    assert all(torch.equal(p, frozen[n]) for n, p in probe.named_parameters() if not p.requires_grad)
    assert torch.equal(probe.featurize(ids, mask), before)  # in train mode too: no dropout in the frozen part
    probe.eval()  # (the head's own dropout, if it has one, is off) cached features give the logits the tokens give
    torch.testing.assert_close(probe(features=before).logits, probe(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize(
    "case", [c for c in TRAINED if TRAINED[c][0] != "own_linear"], ids=lambda c: f"{c[0]}-{len(c[1])}"
)
def test_a_probe_in_an_hf_layout_exports_as_that_class_with_the_same_logits(case, tmp_path):
    arch, freeze = case
    probe = probe_of(arch, **dict(freeze))
    for p in probe.parameters():
        if p.requires_grad:
            p.data.normal_()  # trained weights, not the init
    policy = build_freeze_policy(OmegaConf.structured(FreezeBackbone(**dict(freeze))))
    model, kind = policy.model_for_export(probe)
    assert kind == "model"
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch()
    torch.testing.assert_close(
        reloaded(input_ids=ids, attention_mask=mask).logits, probe.eval()(input_ids=ids, attention_mask=mask).logits
    )


def test_a_probe_no_hf_class_computes_exports_as_backbone_plus_head(tmp_path):
    from transformers import AutoConfig, AutoModel

    probe = probe_of("bert")  # mean pooling over BERT: BertForSequenceClassification would read the pooler
    probe.probe_head.weight.data.normal_()
    policy = build_freeze_policy(OmegaConf.structured(FreezeBackbone()))
    model, kind = policy.model_for_export(probe)
    assert kind == "probe" and model is probe
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "model.safetensors",
        "probe_head.safetensors",
        "probe.json",
    }
    assert AutoConfig.from_pretrained(tmp_path).architectures == ["BertModel"]  # the backbone, not a classifier
    ids, mask = padded_batch()
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(
        backbone(input_ids=ids).last_hidden_state, probe.base_model(input_ids=ids).last_hidden_state
    )
    loaded = load_probe(tmp_path)
    assert loaded.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    torch.testing.assert_close(
        loaded(input_ids=ids, attention_mask=mask).logits, probe.eval()(input_ids=ids, attention_mask=mask).logits
    )
    (tmp_path / "probe.json").unlink()
    with pytest.raises(TransferlabError, match="no probe.json, so not a probe export"):
        load_probe(tmp_path)


def rows(texts_ids, labels):
    key = f"probe-test-{texts_ids}-{labels}"
    data = Dataset.from_dict({"input_ids": texts_ids, "labels": labels})
    return Rows(store.rows(key, lambda scratch: data, ["labels"], 100), ["labels"], key)


def featurize_all(probe, splits):
    return cached_features(splits, probe, PadCollator(0), 2, torch.device("cpu"), nullcontext, "32-true")


def test_feature_cache_hits_misses_and_invalidates(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    splits = {"train": rows([[3, 4, 5], [6, 7], [8, 9, 10, 11], [12]], [0, 1, 2, 1]), "validation": rows([[5, 6]], [2])}
    probe = probe_of("modernbert")
    out, status = featurize_all(probe, splits)
    assert status == {"train": "miss", "validation": "miss"}
    entries = sorted((tmp_path / "features").iterdir())  # no temp dir left: two sealed entries
    assert [sorted(p.name for p in e.iterdir()) for e in entries] == [["features.npy", "manifest.json"]] * 2
    for i in range(len(splits["train"])):  # row i is example i's features, however batched
        ids = splits["train"][i]["input_ids"].tolist()
        alone = probe.featurize(torch.tensor([ids]), torch.ones((1, len(ids)), dtype=torch.long))[0]
        torch.testing.assert_close(torch.from_numpy(out["train"][i]["features"].copy()), alone, atol=1e-5, rtol=1e-5)
        assert out["train"][i]["labels"] == splits["train"].columns["labels"][i]
    batch = out["train"].collate([out["train"][0], out["train"][2]])
    assert batch["labels"].tolist() == [0, 2] and batch["features"].shape == (2, 32) and batch["ids"] == [0, 2]

    assert featurize_all(probe, splits)[1] == {"train": "hit", "validation": "hit"}
    probe.classifier.weight.data.add_(1.0)  # the trained head: the features are the same
    assert featurize_all(probe, splits)[1] == {"train": "hit", "validation": "hit"}
    probe.model.layers[0].attn.Wqkv.weight.data.add_(1e-3)  # new frozen weights: every split is computed again
    assert featurize_all(probe, splits)[1] == {"train": "miss", "validation": "miss"}
    assert featurize_all(probe_of("modernbert", pooling="cls"), splits)[1] == {"train": "miss", "validation": "miss"}
    changed = {**splits, "validation": rows([[5, 7]], [2])}  # new data
    assert featurize_all(probe, changed)[1] == {"train": "hit", "validation": "miss"}


def test_the_probe_contract_is_the_policys_featurizer():
    """Which model computes cached features is the policy's answer (featurizer), not a class-name or hasattr test:
    a probe for a sequence classifier under freeze=backbone, nothing under any other policy or task model."""
    from transformers import BertForMaskedLM

    from transferlab.freeze.common import Policy
    from transferlab.freeze.probe import Probe, is_sequence_classifier

    policy = build_freeze_policy(OmegaConf.structured(FreezeBackbone()))
    probe = policy.apply(MODELS["bert"]())
    assert isinstance(probe, Probe) and policy.featurizer(probe) is probe
    masked_lm = BertForMaskedLM(BertConfig(**SMALL))
    assert not is_sequence_classifier(masked_lm) and policy.featurizer(policy.apply(masked_lm)) is None
    assert is_sequence_classifier(MODELS["gpt2"]()) and Policy(None).featurizer(MODELS["bert"]()) is None
