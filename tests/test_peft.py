"""freeze=peft: any peft method from config. Task types from the model's class, refusals in one line, the keys of
peft's config classes, the parameter table, AdaLoRA's rank allocation, the adapter export; and (slow) each method on
experiment=lora's task through the CLI, its export reloaded with the test metrics the run recorded."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    T5Config,
    T5ForConditionalGeneration,
    T5ForSequenceClassification,
)

from transferlab.errors import TransferlabError
from transferlab.freeze import build_freeze_policy, format_parameter_table, parameter_summary
from transferlab.freeze.lora import FreezeLoRA
from transferlab.freeze.peft_methods import task_type
from transferlab.freeze.peft_policy import FreezePeft, adapter_usage

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)  # tiny models: one thread is faster


def bert(cls=BertForSequenceClassification, **kw):
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=100, pad_token_id=0
    )
    return cls(config, **kw)


def gpt2(cls):
    torch.manual_seed(0)
    return cls(GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=32, vocab_size=100, pad_token_id=0))


def t5(cls=T5ForConditionalGeneration):
    config = T5Config(
        d_model=32,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        d_kv=16,
        vocab_size=100,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return cls(config)


def peft_policy(method, **peft_config):
    return build_freeze_policy(OmegaConf.structured(FreezePeft(method=method, peft_config=peft_config or None)))


BATCH = {"input_ids": torch.randint(1, 100, (4, 8), generator=torch.Generator().manual_seed(1))}
BATCH["attention_mask"] = torch.ones_like(BATCH["input_ids"])
LABELS = torch.tensor([0, 1, 1, 0])


def train_steps(policy, model, steps, loss_of=None):
    """AdamW over the trainable parameters, calling the policy after each step as the LightningModule does."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for step in range(1, steps + 1):
        logits = (loss_of or model)(**BATCH).logits
        torch.nn.functional.cross_entropy(logits, LABELS).backward()
        opt.step()
        policy.after_optimizer_step(model, step, steps)
        opt.zero_grad()
    return model.eval()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (bert, "SEQ_CLS"),
        (lambda: bert(BertForTokenClassification), "TOKEN_CLS"),
        (lambda: bert(BertForQuestionAnswering), "QUESTION_ANS"),
        (lambda: gpt2(GPT2LMHeadModel), "CAUSAL_LM"),
        (t5, "SEQ_2_SEQ_LM"),
        (lambda: bert(BertModel), "FEATURE_EXTRACTION"),
        (lambda: bert(BertForMaskedLM), None),
    ],
    ids=["seq_cls", "token_cls", "qa", "causal_lm", "seq2seq", "features", "masked_lm"],
)
def test_the_task_type_comes_from_the_models_class(make, expected):
    assert task_type(make()) == expected


@pytest.mark.parametrize(
    ("method", "make", "line"),
    [
        (
            "prefix_tuning",
            bert,
            "freeze.method=prefix_tuning on BertForSequenceClassification: peft passes the prefix as past_key_values, "
            "which this SEQ_CLS model's forward does not take; use lora, dora, ia3, adalora, prompt_tuning",
        ),
        (
            "prompt_tuning",
            lambda: gpt2(GPT2ForSequenceClassification),
            "freeze.method=prompt_tuning on GPT2ForSequenceClassification: prompt tuning feeds it embeddings, and a "
            "decoder classifier finds the token it pools in the input ids; use lora, dora, ia3, adalora",
        ),
        (
            "prompt_tuning",
            lambda: t5(T5ForSequenceClassification),
            "freeze.method=prompt_tuning on T5ForSequenceClassification: prompt tuning feeds it embeddings, and an "
            "encoder-decoder classifier finds the token it pools in the input ids; use lora, dora, ia3, adalora",
        ),
        (
            "prompt_tuning",
            lambda: bert(BertForMaskedLM),
            "freeze.method=prompt_tuning on BertForMaskedLM: peft has no task type for this model, and its "
            "prompt_tuning needs one; use lora, dora, ia3, adalora",
        ),
        (
            "prompt_tuning",
            lambda: gpt2(GPT2LMHeadModel),
            "freeze.method=prompt_tuning on GPT2LMHeadModel: prompt tuning prepends virtual tokens to the input, so "
            "every per-token output of CAUSAL_LM grows by them; use lora, dora, ia3, adalora, prefix_tuning",
        ),
    ],
    ids=[
        "prefix_on_encoder_classifier",
        "prompt_on_decoder_classifier",
        "prompt_on_encoder_decoder_classifier",
        "prompt_on_masked_lm",
        "prompt_on_causal_lm",
    ],
)
def test_a_method_the_model_does_not_support_is_refused_naming_what_works(method, make, line):
    model = make()
    with pytest.raises(TransferlabError) as error:
        peft_policy(method).apply(model)
    assert str(error.value) == line
    assert not any("lora_" in n or "prompt_encoder" in n for n, _ in model.named_parameters())  # left untouched


@pytest.mark.parametrize(
    ("method", "peft_config", "line"),
    [
        ("ia3", {"r": 4}, r"freeze.peft_config.r is not a field of IA3Config \(freeze.method=ia3\); its fields: "),
        ("lora", {"task_type": "SEQ_CLS"}, r"freeze.peft_config.task_type is not a field of LoraConfig"),
        (
            "adalora",
            {"orth_reg_weight": 0.5},
            r"freeze.peft_config.orth_reg_weight: peft adds AdaLoRA's orthogonal regulariser to the model's own loss, "
            r"which transferlab's objectives don't use; leave it at 0$",
        ),
        (
            "dora",
            {"target_modules": ["qurey"]},
            r"^freeze.peft_config.target_modules \['qurey'\] match no linear layer of BertForSequenceClassification; "
            r"choose from: dense, key, query, value$",
        ),
        (
            "lora",
            {"target_modules": r".*\.quer"},
            r"^freeze.peft_config.target_modules='.\*\\.quer' matches no module of BertForSequenceClassification$",
        ),
        ("lora", {"init_lora_weights": "nonsense"}, r"^freeze.method=lora: .*; check freeze.peft_config$"),
    ],
    ids=["unknown_key", "own_key", "adalora_regulariser", "unmatched_targets", "unmatched_regex", "peft_refuses"],
)
def test_bad_peft_config_fails_in_one_line(method, peft_config, line):
    with pytest.raises(TransferlabError, match=line) as error:
        peft_policy(method, **peft_config).apply(bert())
    assert "\n" not in str(error.value)
    if method == "ia3":  # the valid keys are the class's own fields, less those transferlab sets
        fields = str(error.value).split("its fields: ")[1].split(", ")
        assert {"target_modules", "feedforward_modules", "modules_to_save"} <= set(fields)
        assert "task_type" not in fields and fields == sorted(fields)


def test_peft_config_must_be_a_dict():
    policy = build_freeze_policy(OmegaConf.create({"name": "peft", "method": "ia3", "peft_config": 5}))
    with pytest.raises(TransferlabError) as error:
        policy.apply(bert())
    assert str(error.value) == (
        "freeze.peft_config=5 is not a dict; give IA3Config's keys as one, e.g. freeze.peft_config={key:value}"
    )


def test_the_table_shows_the_virtual_tokens_and_the_adapters():
    summary = parameter_summary(peft_policy("prompt_tuning", num_virtual_tokens=5).apply(bert()))
    rows = {name: (trainable, total) for name, trainable, total in summary["rows"]}
    assert rows["prompt_encoder"] == (5 * 32, 5 * 32) and rows["bert"][0] == 0
    assert rows["classifier"] == (66, 132)  # the trained copy of the head, beside the frozen original
    assert summary["trainable"] == 5 * 32 + 66
    assert format_parameter_table(summary).splitlines() == [
        "module          trainable   total   share",
        "bert                    0  46,400    0.0%",
        "classifier             66     132   50.0%",
        "prompt_encoder        160     160  100.0%",
        "total                 226  46,692    0.5%",
    ]
    summary = parameter_summary(peft_policy("ia3").apply(bert()))
    rows = {name: (trainable, total) for name, trainable, total in summary["rows"]}
    # IA3 on BERT (peft's targets), in each of 3 blocks: the outputs of key, value and attention.output.dense (32
    # each) and the inputs of the feed-forward output.dense (its 64)
    assert rows["bert"][0] == 3 * (32 + 32 + 32 + 64)


def test_freeze_lora_is_the_short_form_of_freeze_peft_lora():
    short = build_freeze_policy(OmegaConf.structured(FreezeLoRA(r=4, alpha=8, dropout=0.0)))
    long = peft_policy("lora", r=4, lora_alpha=8, lora_dropout=0.0)
    a, b = short.apply(bert()), long.apply(bert())
    trained = [(n, tuple(p.shape)) for n, p in a.named_parameters() if p.requires_grad]
    assert trained == [(n, tuple(p.shape)) for n, p in b.named_parameters() if p.requires_grad]
    assert a.active_peft_config.to_dict() == b.active_peft_config.to_dict()
    assert a.active_peft_config.task_type == "SEQ_CLS" and a.active_peft_config.target_modules == {"query", "value"}


def test_adalora_reallocates_its_ranks_over_the_runs_steps():
    policy = peft_policy("adalora", init_r=4, target_r=2)
    model = policy.apply(bert())
    modules = 2 * 3  # query and value in 3 blocks
    train_steps(policy, model, 6)
    config = model.active_peft_config
    assert config.total_step == 6  # the run's count, set at its first step
    assert config.rank_pattern is not None
    kept = sum(int((p != 0).sum()) for n, p in model.named_parameters() if "lora_E" in n)
    assert kept == 2 * modules  # the final budget: target_r per module, from init_r=4 each


def test_a_training_forward_past_the_wrapper_fails_before_a_step():
    policy = peft_policy("prompt_tuning")
    model = policy.apply(bert())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(TransferlabError) as error:  # the head would train, on text without the virtual tokens
        train_steps(policy, model, 1, loss_of=model.get_base_model())
    assert str(error.value) == (
        "freeze.method=prompt_tuning: the objective ran BertModel past peft's wrapper, so the virtual tokens never "
        "reach it (a loss from the base model's hidden states, as objective.loss_chunk>0 computes one); turn that "
        "off or use lora, dora, ia3, adalora"
    )
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with torch.no_grad():  # evaluation may (transformers' generate runs the encoder itself)
        model.eval().get_base_model()(**BATCH)
    train_steps(policy, model, 1)  # through the wrapper it trains


def test_prompt_tuning_exports_the_adapter_and_the_base_it_loads_over(tmp_path):
    from peft import AutoPeftModelForSequenceClassification, PeftModel

    policy = peft_policy("prompt_tuning")
    model = train_steps(policy, policy.apply(bert()), 2)
    with torch.no_grad():
        expected = model(**BATCH).logits
    export, kind = policy.model_for_export(model)
    assert kind == "adapter"
    export.save_pretrained(tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and config["base_model_name_or_path"] == str((tmp_path / "base").resolve())
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    assert not any("prompt" in n or "modules_to_save" in n for n, _ in base.named_parameters())
    # the base is the model as the run built it: its frozen weights, and its head as it was before training
    assert torch.equal(base.bert.embeddings.word_embeddings.weight, bert().bert.embeddings.word_embeddings.weight)
    assert torch.equal(base.classifier.weight, bert().classifier.weight)
    with torch.no_grad():
        loaded = PeftModel.from_pretrained(base, tmp_path).eval()  # the model card's way
        torch.testing.assert_close(loaded(**BATCH).logits, expected, atol=1e-6, rtol=0)
        auto = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path).eval()
        torch.testing.assert_close(auto(**BATCH).logits, expected, atol=1e-6, rtol=0)


def test_the_model_card_shows_how_an_adapter_loads():
    assert adapter_usage("path/to/export", "AutoModelForSequenceClassification") == (
        "from peft import PeftModel\n"
        "from transformers import AutoTokenizer, AutoModelForSequenceClassification\n\n"
        'base = AutoModelForSequenceClassification.from_pretrained("path/to/export/base")\n'
        'model = PeftModel.from_pretrained(base, "path/to/export")\n'
        'tokenizer = AutoTokenizer.from_pretrained("path/to/export")'
    )


def test_prefix_tuning_under_clms_chunked_loss_is_refused_at_the_first_step(tmp_path, monkeypatch):
    from test_contract import FAST, _one_step

    from transferlab.cli.front import compose

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    overrides = [
        "objective=clm",
        "model=tiny_gpt2",
        "data=wordnet_corpus",
        "freeze=peft",
        "freeze.method=prefix_tuning",
    ]
    with pytest.raises(TransferlabError, match="^freeze.method=prefix_tuning: the objective ran GPT2Model past peft's"):
        _one_step(compose([*overrides, *FAST]), tmp_path / "run")  # with objective.loss_chunk=0 it trains: contract


# --- Each method on experiment=lora's task, through the CLI (slow) --------------------------------------------------


def train(*overrides: str):
    from transferlab.train import main

    old, sys.argv = sys.argv, ["transferlab-train", "debug=fast", *overrides]
    try:
        main()
    finally:
        sys.argv = old


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """experiment=lora's model: a pretrain_mlm run's export (debug=fast)."""
    run = tmp_path_factory.mktemp("pretrain") / "run"
    train("experiment=pretrain_mlm", f"hydra.run.dir={run}")
    return run / "export"


def recorded_test_metrics(run: Path, model, pretrained: Path) -> tuple[float, float]:
    """test/acc and test/loss recomputed one text at a time from the reloaded export."""
    from transformers import AutoTokenizer

    from transferlab.cli.front import compose
    from transferlab.data.loading import load_splits
    from transferlab.objectives.classification import Classification

    cfg = compose(["experiment=lora", "debug=fast", f"model.name_or_path={pretrained}"])
    test = load_splits(cfg.data, Classification)[0]["test"]
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    losses, hits = [], []
    with torch.no_grad():
        for text, label in zip(test["text"], test["label"]):
            ids = tokenizer(text, truncation=True, max_length=cfg.data.max_seq_len, return_tensors="pt")
            logits = model(**ids).logits[0]
            target = torch.tensor(model.config.label2id[label])
            losses.append(torch.nn.functional.cross_entropy(logits, target).item())
            hits.append(int(logits.argmax() == target))
    return sum(hits) / len(hits), sum(losses) / len(losses)


# what each method adds to the table, in ModernBERT's own rows (the head's rows are the same for all)
TABLE_ROWS = {
    "lora": r"model\s+8,192\s",
    "dora": r"model\s+8,960\s",
    "ia3": r"model\s+1,536\s",
    "adalora": r"model\s+12,312\s",
    "prompt_tuning": r"prompt_encoder\s+1,024\s+1,024\s+100.0%",
}


@pytest.mark.slow
@pytest.mark.parametrize("method", TABLE_ROWS)
def test_each_method_trains_the_lora_task_and_its_export_reloads_with_the_runs_test_metrics(
    method, pretrained, tmp_path, capfd
):
    from peft import PeftModel

    run = tmp_path / "run"
    train(
        "experiment=lora",
        f"model.name_or_path={pretrained}",
        "freeze=peft",
        f"freeze.method={method}",
        f"hydra.run.dir={run}",
    )
    printed = capfd.readouterr()
    assert re.search(TABLE_ROWS[method], printed.out + printed.err, re.MULTILINE)
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["params/trainable"] < m["params/total"] / 10
    card = (run / "export" / "README.md").read_text()
    if method == "prompt_tuning":
        assert m["export/kind"] == "adapter" and "library_name: peft" in card
        assert adapter_usage("path/to/export", "AutoModelForSequenceClassification") in card
        base = AutoModelForSequenceClassification.from_pretrained(run / "export" / "base")
        model = PeftModel.from_pretrained(base, run / "export").eval()
    else:
        assert m["export/kind"] == "model" and "library_name: transformers" in card
        model = AutoModelForSequenceClassification.from_pretrained(run / "export").eval()
        assert not any(key in n for n, _ in model.named_parameters() for key in ("lora_", "ia3_", "modules_to_save"))
    acc, loss = recorded_test_metrics(run, model, pretrained)
    assert m["test/acc"] == pytest.approx(acc, abs=1e-6) and m["test/loss"] == pytest.approx(loss, rel=1e-4)


@pytest.mark.slow
def test_prefix_tuning_is_refused_on_the_lora_task_before_training(pretrained, tmp_path, capfd):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        train(
            "experiment=lora",
            f"model.name_or_path={pretrained}",
            "freeze=peft",
            "freeze.method=prefix_tuning",
            f"hydra.run.dir={run}",
        )
    assert exit_.value.code == 1
    line = (
        "freeze.method=prefix_tuning on ModernBertForSequenceClassification: peft passes the prefix as "
        "past_key_values, which this SEQ_CLS model's forward does not take; use lora, dora, ia3, adalora, prompt_tuning"
    )
    assert f"error: {line}" in capfd.readouterr().err.splitlines()
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"
    assert not (run / "checkpoints").exists()


@pytest.mark.slow
def test_prefix_tuning_on_seq2seq_exports_an_adapter_with_the_logits_it_was_tested_with(tmp_path):
    from peft import AutoPeftModelForSeq2SeqLM
    from transformers import AutoTokenizer

    from transferlab.cli.generate import load

    run = tmp_path / "run"
    train(
        "objective=seq2seq",
        "model=tiny_t5",
        "data=wordnet_definitions",
        "freeze=peft",
        "freeze.method=prefix_tuning",
        f"hydra.run.dir={run}",
    )
    m = json.loads((run / "metrics.json").read_text())
    assert (
        m["status"] == "ok" and m["export/kind"] == "adapter" and m["params/trainable"] == 8 * 2 * 2 * 128
    )  # tokens x layers x (key, value) x width
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    tested, _ = load(str(best))  # the model the test split was scored with, rebuilt from the best checkpoint
    exported = AutoPeftModelForSeq2SeqLM.from_pretrained(run / "export").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    rows = [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()][:4]
    batch = tokenizer([r["source"] for r in rows], return_tensors="pt", padding=True)
    targets = tokenizer([r["reference"] for r in rows], return_tensors="pt", padding=True).input_ids
    with torch.no_grad():
        a = exported(**batch, decoder_input_ids=targets).logits
        b = tested.model.eval()(**batch, decoder_input_ids=targets).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
