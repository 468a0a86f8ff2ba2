"""Optimizer and schedule choice (optimizer.name, scheduler.name), label smoothing and class weights."""

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf
from transformers import BertConfig, BertForSequenceClassification

from transferlab.cli.front import compose, preflight
from transferlab.config.optim import OptimizerConfig, SchedulerConfig
from transferlab.errors import TransferlabError
from transferlab.freeze import build_freeze_policy
from transferlab.freeze.policies import FreezeGradual, FreezeLLRD
from transferlab.objectives.base import IGNORE
from transferlab.run.optim import build_optimizer, build_scheduler, schedule

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=100, pad_token_id=0
    )
    return BertForSequenceClassification(config)


def optimizer_cfg(**kw):
    return OmegaConf.structured(OptimizerConfig(**kw))


def llrd_groups(model, lr=1e-2, weight_decay=0.1):
    policy = build_freeze_policy(OmegaConf.structured(FreezeLLRD(decay=0.5)))
    return policy.param_groups(policy.apply(model), lr, weight_decay, steps_per_epoch=1)


def test_adamw_stays_the_default_with_its_betas_and_eps():
    groups = llrd_groups(tiny_bert())
    opt = build_optimizer(groups, optimizer_cfg(betas=[0.8, 0.99], eps=1e-6))
    assert type(opt) is torch.optim.AdamW and OptimizerConfig().name == "adamw"
    assert opt.defaults["betas"] == (0.8, 0.99) and opt.defaults["eps"] == 1e-6


@pytest.mark.parametrize(
    "cfg, cls, expected",
    [
        (
            dict(name="sgd", momentum=0.8, nesterov=True),
            torch.optim.SGD,
            {"momentum": 0.8, "nesterov": True, "dampening": 0},
        ),
        (
            dict(name="adafactor", scale_parameter=True, clip_threshold=0.5, decay_rate=-0.6, beta1=0.9),
            "Adafactor",
            {
                "scale_parameter": True,
                "relative_step": False,
                "warmup_init": False,
                "clip_threshold": 0.5,
                "decay_rate": -0.6,
                "beta1": 0.9,
            },
        ),
        (dict(name="adafactor"), "Adafactor", {"scale_parameter": False, "relative_step": False, "beta1": None}),
    ],
)
def test_optimizer_is_built_as_configured_over_the_policys_groups(cfg, cls, expected):
    groups = llrd_groups(tiny_bert())
    kept = [(g["name"], g["lr"], g["weight_decay"], len(g["params"])) for g in groups]
    opt = build_optimizer(groups, optimizer_cfg(lr=3e-3, **cfg))
    assert type(opt).__name__ == (cls if isinstance(cls, str) else cls.__name__)
    assert {k: opt.defaults[k] for k in expected} == expected
    assert opt.defaults["lr"] == 3e-3
    # every group as the policy made it: its own lr (llrd's multipliers) and its weight-decay split
    assert [(g["name"], g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups] == kept
    assert len({g["lr"] for g in opt.param_groups}) > 2 and {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.1}


@pytest.mark.parametrize("name", ["adamw", "adafactor", "sgd"])
def test_groups_held_at_lr_zero_stay_bit_identical(name):
    """freeze=gradual holds the groups not yet unfrozen at an LR multiplier of 0: every optimizer leaves them as they
    were (weight decay included), while the head trains."""
    model = tiny_bert()
    policy = build_freeze_policy(OmegaConf.structured(FreezeGradual(unfreeze_every=100, interval="step")))
    model = policy.apply(model)
    groups = policy.param_groups(model, 1e-2, 0.1, steps_per_epoch=1)
    opt = build_optimizer(groups, optimizer_cfg(name=name, lr=1e-2, weight_decay=0.1))
    sched = build_scheduler(opt, groups, OmegaConf.structured(SchedulerConfig(name="constant", warmup_ratio=0)), 10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(1, 100, (4, 8), generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        model(input_ids=ids, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("classifier", "bert.pooler")) for n in changed)
    assert any(n.startswith("bert.encoder.layer.0") for n in before) and all(
        torch.equal(p, before[n]) for n, p in model.named_parameters() if n.startswith("bert.encoder")
    )


def lrs(name, warmup_ratio, total, num_cycles=1, steps=()):
    """The LR of each group after each of `steps` scheduler steps, from build_scheduler over two groups (lr 1, 0.5)."""
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    groups = [{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.5}]
    opt = torch.optim.SGD(groups, lr=1.0)
    cfg = OmegaConf.structured(SchedulerConfig(name=name, warmup_ratio=warmup_ratio, num_cycles=num_cycles))
    sched = build_scheduler(opt, groups, cfg, total)
    out = {}
    for step in range(max(steps) + 1):
        if step in steps:
            out[step] = [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    return out


def test_inverse_sqrt_is_linear_warmup_then_sqrt_of_warmup_over_step():
    got = lrs("inverse_sqrt", 0.1, 100, steps=(0, 9, 10, 40, 99))  # warmup = 10 steps
    for step, (lr, half) in got.items():
        want = (step + 1) / 11 if step < 10 else math.sqrt(10 / step)
        assert lr == pytest.approx(want) and half == pytest.approx(want / 2)
    assert got[40][0] == pytest.approx(0.5)
    # after warm-up, transformers' get_inverse_sqrt_schedule
    from transformers import get_inverse_sqrt_schedule

    theirs = get_inverse_sqrt_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 10).lr_lambdas[0]
    assert [got[s][0] for s in (10, 40, 99)] == pytest.approx([theirs(s) for s in (10, 40, 99)])
    assert schedule("inverse_sqrt", 0, 100)(30_000) == pytest.approx(0.5)  # no warm-up: timescale 10,000


def test_cosine_with_restarts_follows_num_cycles():
    steps = (0, 9, 10, 30, 40, 54, 70, 99)
    got = lrs("cosine_with_restarts", 0.1, 100, num_cycles=3, steps=steps)  # 90 decay steps: 3 cycles of 30
    for step, (lr, half) in got.items():
        progress = (step - 10) / 90
        want = (step + 1) / 11 if step < 10 else 0.5 * (1 + math.cos(math.pi * ((3 * progress) % 1.0)))
        assert lr == pytest.approx(want) and half == pytest.approx(want / 2)
    assert got[10][0] == pytest.approx(1.0) and got[40][0] == pytest.approx(1.0)  # a restart
    from transformers import get_cosine_with_hard_restarts_schedule_with_warmup

    param = torch.nn.Parameter(torch.zeros(1))
    theirs = get_cosine_with_hard_restarts_schedule_with_warmup(torch.optim.SGD([param], lr=1.0), 10, 100, 3)
    assert [got[s][0] for s in steps[2:]] == pytest.approx([theirs.lr_lambdas[0](s) for s in steps[2:]])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["optimizer.name=sgd", "optimizer.betas=[0.8,0.99]"],
            "optimizer.betas=[0.8, 0.99] applies to optimizer.name=adamw only, not optimizer.name=sgd; "
            "drop optimizer.betas or pick optimizer.name=adamw",
        ),
        (["optimizer.momentum=0.5"], "optimizer.momentum=0.5 applies to optimizer.name=sgd only"),
        (["optimizer.name=sgd", "optimizer.beta1=0.9"], "optimizer.beta1=0.9 applies to optimizer.name=adafactor only"),
        (["optimizer.name=adafactor", "optimizer.eps=1e-6"], "optimizer.eps=1e-06 applies to optimizer.name=adamw"),
        (["optimizer.name=adam"], "optimizer.name=adam is not one of: adafactor, adamw, sgd"),
        (["optimizer.name=adafactor", "optimizer.beta1=1"], "optimizer.beta1=1.0 must be in [0, 1)"),
        (["optimizer.name=adafactor", "optimizer.decay_rate=0.5"], "optimizer.decay_rate=0.5 must be in [-1, 0)"),
        (["optimizer.name=sgd", "optimizer.momentum=1"], "optimizer.momentum=1.0 must be in [0, 1)"),
        (
            ["optimizer.name=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"],
            "optimizer.nesterov=true needs momentum; set optimizer.momentum>0 (e.g. 0.9)",
        ),
        (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] must be two numbers in [0, 1)"),
        (
            ["scheduler.num_cycles=3"],
            "scheduler.num_cycles=3 applies to scheduler.name=cosine_with_restarts only, not scheduler.name=linear",
        ),
        (["scheduler.name=cosine_with_restarts", "scheduler.num_cycles=0"], "scheduler.num_cycles=0 must be >= 1"),
        (["objective.label_smoothing=1"], "objective.label_smoothing=1.0 must be in [0, 1)"),
        (["objective=clm", "model=tiny_gpt2", "objective.label_smoothing=-0.1"], "label_smoothing=-0.1 must be in"),
        (["experiment=regression", "objective.label_smoothing=0.1"], "unknown key 'objective.label_smoothing'"),
        (["objective.class_weights=inverse"], "objective.class_weights=inverse is not one of: balanced"),
        (
            ["experiment=multilabel", "objective.class_weights=balanced"],
            "unknown key 'objective.class_weights'",
        ),
    ],
)
def test_bad_optimizer_schedule_and_loss_options_fail_in_one_line(overrides, message):
    with pytest.raises(TransferlabError) as info:
        preflight(overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_every_cross_entropy_objective_takes_label_smoothing():
    for objective in ("classification", "token_classification", "extractive_qa", "multilabel_classification"):
        assert compose([f"objective={objective}", "objective.label_smoothing=0.1"]).objective.label_smoothing == 0.1
    for objective, model in (("mlm", "tiny_bert"), ("clm", "tiny_gpt2"), ("sft", "tiny_gpt2")):
        cfg = compose([f"objective={objective}", f"model={model}", "objective.label_smoothing=0.2"])
        assert cfg.objective.label_smoothing == 0.2
    for objective in ("seq2seq", "span_corruption"):
        cfg = compose([f"objective={objective}", "model=tiny_t5", "objective.label_smoothing=0.2"])
        assert cfg.objective.label_smoothing == 0.2
    assert "label_smoothing" not in compose(["experiment=regression"]).objective


def test_chunked_lm_loss_smoothing_equals_torchs_over_the_real_vocabulary():
    """Padded vocabulary columns (model.vocab_multiple) take no share of the smoothing; IGNORE rows are skipped."""
    from torch.nn.functional import cross_entropy

    from transferlab.objectives.lm_loss import smoothed_linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    vocab, padded = 50, 64
    hidden = torch.randn(23, 16, generator=g, requires_grad=True)
    weight = torch.randn(padded, 16, generator=g, requires_grad=True)
    bias = torch.randn(padded, generator=g, requires_grad=True)
    targets = torch.randint(0, vocab, (23,), generator=g)
    targets[[2, 7, 20]] = IGNORE
    loss, nll = smoothed_linear_cross_entropy(hidden, weight, targets, bias, chunk=8, vocab=vocab, smoothing=0.1)
    loss.backward()
    got = hidden.grad.clone(), weight.grad.clone(), bias.grad.clone()
    hidden.grad = weight.grad = bias.grad = None
    logits = hidden @ weight[:vocab].t() + bias[:vocab]
    want = cross_entropy(logits, targets, ignore_index=IGNORE, label_smoothing=0.1)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert nll.item() == pytest.approx(cross_entropy(logits, targets, ignore_index=IGNORE).item(), rel=1e-5)
    assert not nll.requires_grad
    torch.testing.assert_close(got[0], hidden.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got[1], weight.grad, rtol=1e-4, atol=1e-6)  # padded rows: 0 in both
    torch.testing.assert_close(got[2], bias.grad, rtol=1e-4, atol=1e-6)
    assert not got[1][vocab:].any()
    with torch.no_grad():  # evaluation's path, chunk by chunk
        plain = smoothed_linear_cross_entropy(hidden, weight, targets, bias, chunk=8, vocab=vocab, smoothing=0.1)
    assert [plain[0].item(), plain[1].item()] == pytest.approx([loss.item(), nll.item()], rel=1e-5)


def test_dense_smoothed_cross_entropy_masks_padded_columns():
    """The dense path (MLM, seq2seq, span corruption, CLM without a chunked head): logits already at -inf in the
    padded columns give torch's smoothed loss over the real ones, never inf."""
    from torch.nn.functional import cross_entropy

    from transferlab.objectives.lm_loss import masked_padding
    from transferlab.objectives.smoothing import smoothed_cross_entropy, vocabulary_columns

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 64, generator=g)
    targets = torch.randint(0, 50, (10,), generator=g)
    targets[3] = IGNORE
    padded = masked_padding(logits, 50)
    loss, nll = smoothed_cross_entropy(padded, targets, 0.2, vocabulary_columns(padded, 50))
    want = cross_entropy(logits[:, :50], targets, ignore_index=IGNORE, label_smoothing=0.2)
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    assert nll.item() == pytest.approx(cross_entropy(logits[:, :50], targets, ignore_index=IGNORE).item(), rel=1e-6)
    assert math.isinf(cross_entropy(padded, targets, ignore_index=IGNORE, label_smoothing=0.2).item())  # why masked


def test_row_masks_spread_qa_smoothing_over_each_windows_tokens():
    """Extractive QA's start/end loss: each row spreads its smoothing over its own window's tokens (attention mask),
    not over the batch's padding; the cross-entropy itself is the model's as before (its softmax over the row)."""
    from torch.nn.functional import cross_entropy

    from transferlab.objectives.smoothing import smoothed_cross_entropy

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 9, generator=g)
    lengths, targets = [9, 5, 7], torch.tensor([4, 0, 6])
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]
    loss, nll = smoothed_cross_entropy(logits, targets, 0.3, mask)
    logp = logits.log_softmax(-1)
    uniform = torch.stack([-logp[i, :n].mean() for i, n in enumerate(lengths)]).mean()
    assert loss.item() == pytest.approx((0.7 * cross_entropy(logits, targets) + 0.3 * uniform).item(), rel=1e-6)
    assert nll.item() == pytest.approx(cross_entropy(logits, targets).item(), rel=1e-6)
    # where the other columns' logits are -inf (a padded vocabulary), it is torch's label_smoothing on each row alone
    padded = logits.masked_fill(~mask, float("-inf"))
    rows = [
        cross_entropy(logits[i : i + 1, :n], targets[i : i + 1], label_smoothing=0.3) for i, n in enumerate(lengths)
    ]
    want = torch.stack(rows).mean().item()
    assert smoothed_cross_entropy(padded, targets, 0.3, mask)[0].item() == pytest.approx(want, rel=1e-6)


def classification(train_labels, **cfg):
    import datasets

    from transferlab.objectives.classification import Classification, ClassificationConfig

    config = OmegaConf.structured(ClassificationConfig(**cfg))
    return Classification(config, None, None, datasets.Dataset.from_dict({"label": train_labels}))


def fixed_batch():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 3, generator=g)
    labels = torch.tensor([0, 1, 2, 2, 0, 0])
    model = lambda **_: SimpleNamespace(logits=logits)  # noqa: E731 (a model that gives these logits)
    return model, {"input_ids": torch.zeros(6, 4, dtype=torch.long), "labels": labels}, logits


def test_classification_smoothing_is_torchs_in_training_and_off_in_evaluation():
    from torch.nn.functional import cross_entropy

    objective = classification(["a", "b", "c", "a"], label_smoothing=0.15)
    model, batch, logits = fixed_batch()
    smoothed = cross_entropy(logits, batch["labels"], label_smoothing=0.15)
    assert objective.step(model, batch, "train").item() == pytest.approx(smoothed.item())
    # val and test losses stay the plain cross-entropy: comparable across runs, whatever their smoothing
    assert objective.step(model, batch, "val").item() == pytest.approx(cross_entropy(logits, batch["labels"]).item())
    assert smoothed.item() != pytest.approx(cross_entropy(logits, batch["labels"]).item())


def test_multilabel_smoothing_pulls_the_bce_targets_towards_one_half():
    """Multi-label's BCE, the two-class case of the same smoothing: targets y (1 - e) + e / 2, in training only."""
    from datasets import Dataset
    from test_multilabel import GOLD, LABELS, LOGITS, _batch, _model
    from torch.nn.functional import binary_cross_entropy_with_logits

    from transferlab.objectives.multilabel_classification import MultilabelClassification

    cfg = OmegaConf.create({"name": "multilabel_classification", "threshold": 0.5, "tune_threshold": False})
    cfg.label_smoothing = 0.2
    data_cfg = OmegaConf.create({"max_seq_len": 16, "num_proc": None, "label_separator": None})
    train = Dataset.from_dict({"text": ["x"] * len(LABELS), "label": [[label] for label in LABELS]})
    objective = MultilabelClassification(cfg, data_cfg, SimpleNamespace(pad_token_id=0), train)
    gold = torch.tensor(GOLD, dtype=torch.float32)
    smoothed = binary_cross_entropy_with_logits(LOGITS, gold * 0.8 + 0.1)
    assert objective.step(_model(LOGITS), _batch(GOLD), "train").item() == pytest.approx(smoothed.item(), rel=1e-6)
    plain = binary_cross_entropy_with_logits(LOGITS, gold).item()
    assert objective.step(_model(LOGITS), _batch(GOLD), "val").item() == pytest.approx(plain, rel=1e-6)
    assert smoothed.item() != pytest.approx(plain)


def test_balanced_class_weights_follow_the_formula_and_weigh_the_loss():
    """n_samples / (n_classes x count) over train's labels (scikit-learn's balanced), as F.cross_entropy(weight=),
    and kept in the module's state dict: a checkpoint holds the weights its run trained with."""
    from torch.nn.functional import cross_entropy

    train = ["a", "a", "a", "a", "b", "b", "c", "a"]  # 5 a, 2 b, 1 c
    objective = classification(train, class_weights="balanced")
    want = [8 / (3 * 5), 8 / (3 * 2), 8 / (3 * 1)]
    assert objective.class_weights.weight.tolist() == pytest.approx(want)
    model, batch, logits = fixed_batch()
    weight = torch.tensor(want)
    for stage in ("train", "val"):
        assert objective.step(model, batch, stage).item() == pytest.approx(
            cross_entropy(logits, batch["labels"], weight=weight).item()
        )
    assert objective.metrics.state_dict()["class_weights.weight"].tolist() == pytest.approx(want)
    both = classification(train, class_weights="balanced", label_smoothing=0.1)
    assert both.step(model, batch, "train").item() == pytest.approx(
        cross_entropy(logits, batch["labels"], weight=weight, label_smoothing=0.1).item()
    )
    assert classification(train).class_weights is None
    assert "class_weights.weight" not in classification(train).metrics.state_dict()


def test_a_class_with_no_train_example_has_no_balanced_weight():
    from transferlab.objectives.class_weights import balanced

    with pytest.raises(TransferlabError) as info:
        balanced([0, 0, 2], ["a", "b", "c"])
    assert str(info.value) == (
        "objective.class_weights=balanced: label 'b' has no example in train, so it has no weight; "
        "give train an example of every label, or set objective.class_weights=null"
    )


@pytest.mark.slow
def test_translate_trains_with_adafactor_end_to_end(tmp_path):
    """debug=fast on the tiny T5 (experiment=translate) with optimizer.name=adafactor and label smoothing: the run's
    optimizer is transformers' Adafactor at the configured lr with the preset's parameter scaling, and it moves the
    weights."""
    from conftest import train_in_process

    overrides = [
        "experiment=translate",
        "debug=fast",
        "optimizer.name=adafactor",
        "optimizer.lr=1e-3",
        "scheduler.name=inverse_sqrt",
        "objective.label_smoothing=0.1",
        "objective.generation.max_new_tokens=4",
    ]

    def snapshot(a):
        return {n: p.detach().clone() for n, p in a.module.model.named_parameters()}

    a, metrics, before = train_in_process(overrides, tmp_path / "run", before_fit=snapshot)
    opt = a.trainer.optimizers[0]
    assert type(opt).__name__ == "Adafactor" and opt.defaults["relative_step"] is False
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["scale_parameter"] is True  # the preset's, kept
    moved = [n for n, p in a.module.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(moved) == len(before)
    assert math.isfinite(float(metrics["test/loss"])) and "test/bleu" in metrics


@pytest.mark.slow  # torch.compile: about a minute on a CPU
def test_clm_smoothed_step_chunked_dense_and_compiled_agree_and_perplexity_stays_plain():
    """CLM's train step with label smoothing on a padded vocabulary (96 rows, 90 tokens): the chunked loss, the dense
    one and the compiled step give torch's smoothed loss and the same gradients; perplexity is of the plain loss."""
    from test_lm_loss import Vocab, _gpt2, _loss_and_grads
    from torch.nn.functional import cross_entropy

    from transferlab.objectives.clm import CausalLM, CLMConfig

    model, ids = _gpt2(vocab=96), torch.randint(0, 90, (2, 16), generator=torch.Generator().manual_seed(3))

    def clm(chunk):
        return CausalLM(OmegaConf.structured(CLMConfig(loss_chunk=chunk, label_smoothing=0.1)), None, Vocab(90), None)

    dense, chunked, compiled = clm(0), clm(8), clm(8)
    compiled.compile(model)
    want, got, fast = (_loss_and_grads(o, model, {"input_ids": ids}) for o in (dense, chunked, compiled))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1, :90].flatten(0, 1)
    targets = ids[:, 1:].flatten()
    assert want[0].item() == pytest.approx(cross_entropy(logits, targets, label_smoothing=0.1).item(), rel=1e-5)
    for other in (got, fast):
        assert other[0].item() == pytest.approx(want[0].item(), rel=1e-5)
        for name in want[1]:
            torch.testing.assert_close(other[1][name], want[1][name], rtol=1e-4, atol=1e-5)
    plain = cross_entropy(logits, targets).item()
    assert chunked.metrics["train"]["perplexity"].compute().item() == pytest.approx(math.exp(plain), rel=1e-5)
    assert chunked.step(model, {"input_ids": ids}, "val").item() == pytest.approx(plain, rel=1e-5)
