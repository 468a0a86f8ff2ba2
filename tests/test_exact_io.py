"""Text in, text out, exactly: a trained tokenizer keeps case, a tokenizer that cannot give the targets back is
refused, a model dir without tokenizer files is refused by every command, transferlab-generate takes generative
exports only, and transferlab-predict keeps every input cell as read, beside its own pred_* columns."""

import csv
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError

# grapheme-to-phoneme: upper-case targets, whose case is the answer
G2P = [("dog", "D AO1 G"), ("digit", "D IH1 JH AH0 T"), ("cat", "K AE1 T"), ("tree", "T R IY1")] * 10
TEXTS = ["a small dog barks", "the red bus stops here", "a cat", "dogs and cats sleep on the mat all day long"]
NO_TOKENIZER = (
    "no tokenizer files in it (tokenizer.json, tokenizer_config.json or a vocabulary), so every word would "
    "read as unknown"
)
COPY = "copy the tokenizer files the model was trained with into it"


def _pairs(rows=G2P):
    from datasets import Dataset

    return Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})


def _compose(*overrides):
    from transferlab.cli.front import compose

    return compose(["objective=seq2seq", "model=tiny_t5", "tokenizer.vocab_size=200", *overrides])


def _one_line(main, argv, capsys) -> str:
    """A CLI's exit status 2 and its one stderr line, the error's text."""
    capsys.readouterr()  # what building the test's models printed
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0].removeprefix("error: ")


def test_a_trained_tokenizer_keeps_case_unless_asked(tmp_path, monkeypatch):
    from transferlab.models.tokenizer import build_tokenizer
    from transferlab.objectives import OBJECTIVES

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = _compose()
    assert cfg.tokenizer.lowercase is False and "lowercase: false" in OmegaConf.to_yaml(cfg.tokenizer).splitlines()
    tokenizer = build_tokenizer(cfg, _pairs(), tmp_path / "run", True, OBJECTIVES["seq2seq"])
    targets = [t for _, t in G2P[:4]]
    assert tokenizer.batch_decode(tokenizer(targets)["input_ids"], skip_special_tokens=True) == targets
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").is_file()


def test_a_tokenizer_that_cannot_give_the_targets_back_is_refused_with_an_example(tmp_path, monkeypatch):
    from transferlab.models.tokenizer import _train_wordpiece, build_tokenizer
    from transferlab.objectives import OBJECTIVES

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    seq2seq = OBJECTIVES["seq2seq"]
    with pytest.raises(TransferlabError) as refused:
        build_tokenizer(_compose("tokenizer.lowercase=true"), _pairs(), tmp_path / "run", True, seq2seq)
    assert str(refused.value) == (
        "objective=seq2seq: the trained tokenizer (tokenizer.lowercase=true) cannot encode the targets exactly: "
        "'D AO1 G' decodes as 'd ao1 g' (40 of 40 sampled train targets differ); use tokenizer.lowercase=false"
    )
    assert not (tmp_path / "run").exists()  # not kept in the run dir, where a resumed run would reuse it

    # a BERT-style tokenizer (WordPiece, its normaliser) on targets: punctuation spaced out, a character unknown
    bert = _train_wordpiece(iter([["the door (red) is open", "a door"] * 20]), 80, min_frequency=1, lowercase=False)
    bert.save_pretrained(tmp_path / "bert")
    cfg = _compose("tokenizer=pretrained", f"tokenizer.name_or_path={tmp_path / 'bert'}")
    rows = [("a", "the door is open")] * 3 + [("b", "the door (red) is open"), ("c", "a door é")]
    with pytest.raises(TransferlabError) as refused:
        build_tokenizer(cfg, _pairs(rows), tmp_path / "run", True, seq2seq)
    assert str(refused.value) == (
        f"objective=seq2seq: the tokenizer of {tmp_path / 'bert'} cannot encode the targets exactly: "
        "'the door (red) is open' decodes as 'the door ( red ) is open' (2 of 5 sampled train targets differ); "
        "use tokenizer.name_or_path=DIR with a tokenizer that keeps the text, or tokenizer=train on a model from "
        "scratch"
    )

    # whitespace compares as decoding gives it back (runs collapsed, ends stripped); sft's byte-level BPE is exact
    spaced = _pairs([("a", "  the door  is open ")] * 3)
    assert seq2seq.tokenizer_problem(bert, spaced) is None
    sft = _compose("objective=sft", "model=tiny_gpt2", "tokenizer.vocab_size=300")
    unusual = _pairs([*G2P, ("x", "Ünïcode (ok), «quoted»!")])
    build_tokenizer(sft, unusual, tmp_path / "sft", True, OBJECTIVES["sft"])
    assert OBJECTIVES["classification"].tokenizer_problem(bert, spaced) is None  # no text targets to give back


def _bert_dir(path, cls, tokenizer=None, **config):
    from transformers import BertConfig

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, **config
    )
    cls(config).save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def wordpiece():
    from transferlab.models.tokenizer import _train_wordpiece

    return _train_wordpiece(iter([TEXTS * 20]), vocab_size=120, min_frequency=1, lowercase=False)


def test_a_model_dir_without_tokenizer_files_is_refused_by_train_eval_predict_and_generate(
    tmp_path, capsys, monkeypatch
):
    from transformers import BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    from transferlab.cli import generate, predict
    from transferlab.cli.evaluate import evaluate
    from transferlab.cli.front import compose
    from transferlab.models.tokenizer import build_tokenizer
    from transferlab.objectives import OBJECTIVES
    from transferlab.run.preflight import check_inputs

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    bare = _bert_dir(tmp_path / "bare", BertForSequenceClassification, num_labels=2)
    cfg = compose(["model=pretrained", "tokenizer=pretrained", f"model.name_or_path={bare}"])
    fix = "use tokenizer=train, or tokenizer.name_or_path=DIR (the tokenizer the model was trained with)"
    refused = "^" + re.escape(f"model.name_or_path={bare}: {NO_TOKENIZER}; {fix}") + "$"
    with pytest.raises(TransferlabError, match=refused):
        check_inputs(cfg, tmp_path / "run")  # train's preflight: before any data is read or weights load
    with pytest.raises(TransferlabError, match=refused):
        build_tokenizer(cfg, None, tmp_path / "run", True, OBJECTIVES["classification"])  # a checkpoint's (generate)
    run = tmp_path / "earlier_run"  # transferlab-eval of a checkpoint of a run on that dir
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": {}}, run / "checkpoints" / "last.ckpt")  # readable: eval checks it before the model dir
    OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, run / ".hydra" / "config.yaml")
    with pytest.raises(TransferlabError, match=refused):
        evaluate([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])

    (tmp_path / "in.csv").write_text("text\na dog\n")
    assert _one_line(predict.main, [bare, tmp_path / "in.csv"], capsys) == f"{bare}: {NO_TOKENIZER}; {COPY}"
    lm = tmp_path / "lm"
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(lm)
    assert _one_line(generate.main, [lm, "--prompt", "a dog"], capsys) == f"{lm}: {NO_TOKENIZER}; {COPY}"


def test_generate_refuses_an_export_that_does_not_generate(tmp_path, wordpiece, capsys):
    from transformers import BertForSequenceClassification, BertModel

    from transferlab.cli.generate import main

    classifier = _bert_dir(tmp_path / "classifier", BertForSequenceClassification, wordpiece, num_labels=2)
    assert _one_line(main, [classifier, "--prompt", "a dog"], capsys) == (
        f"{classifier}: a BertForSequenceClassification, which does not generate text (no language-model head); "
        "give the export of a seq2seq, sft, span_corruption or clm run"
    )
    encoder = _bert_dir(tmp_path / "encoder", BertModel, wordpiece)
    assert "a BertModel, which does not generate text" in _one_line(main, [encoder, "--prompt", "a dog"], capsys)
    config = json.loads((encoder / "config.json").read_text())
    (encoder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "architectures"}))
    assert "a model whose config.json names no architecture, which does not generate text" in _one_line(
        main, [encoder, "--prompt", "a dog"], capsys
    )


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, wordpiece):
    from transformers import BertForSequenceClassification

    labels = {0: "animal", 1: "vehicle"}
    return _bert_dir(
        tmp_path_factory.mktemp("export") / "export",
        BertForSequenceClassification,
        wordpiece,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )


def test_predict_keeps_every_input_cell_as_read_beside_its_own_columns(tmp_path, classifier, capsys):
    from transferlab.cli.predict import main

    rows = [
        {
            "id": "007",
            "text": "a small dog barks",
            "label": "animal",
            "probability": "high",
            "note": "NA",
            "n": 1.50,
            "ok": True,
            "gone": None,
            "tags": ["x", "y"],
        },
        {
            "id": "010",
            "text": "the red bus stops here",
            "label": "vehicle",
            "probability": "low",
            "note": "nan",
            "n": 2.0,
            "ok": False,
            "gone": None,
            "tags": [],
        },
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(classifier), str(tmp_path / "in.jsonl"), "--top-k", "2"])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [{k: v for k, v in r.items() if not k.startswith("pred_")} for r in out] == rows  # the gold label too
    assert [list(r)[len(rows[0]) :] for r in out] == [["pred_label", "pred_score", "pred_top_k"]] * 2
    for r in out:
        assert r["pred_label"] in ("animal", "vehicle")
        assert r["pred_top_k"][0] == {"label": r["pred_label"], "score": r["pred_score"]}

    main([str(classifier), str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.csv")])
    table = list(csv.reader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert table[0] == [
        "id",
        "text",
        "label",
        "probability",
        "note",
        "n",
        "ok",
        "gone",
        "tags",
        "pred_label",
        "pred_score",
    ]
    assert [r[:9] for r in table[1:]] == [
        ["007", "a small dog barks", "animal", "high", "NA", "1.5", "true", "", '["x", "y"]'],
        ["010", "the red bus stops here", "vehicle", "low", "nan", "2.0", "false", "", "[]"],
    ]
    assert [r[9] for r in table[1:]] == [r["pred_label"] for r in out]


def test_predict_names_the_row_of_a_cell_it_cannot_read_and_refuses_a_shadowing_column(tmp_path, classifier, capsys):
    from transferlab.cli.predict import main

    def refused(name: str, content: str, *flags) -> str:
        (tmp_path / name).write_text(content)
        return _one_line(main, [classifier, tmp_path / name, *flags], capsys).replace(str(tmp_path / name), name)

    assert refused("gap.csv", "id,text\n1,a dog\n2,\n") == (
        "gap.csv line 3: 'text' is empty; give it text, or drop the row"
    )
    assert refused("list.jsonl", '{"text": ["a dog"]}\n') == (
        "list.jsonl line 1: 'text' is not text ([\"a dog\"]); give it text, or drop the row"
    )
    assert refused("taken.csv", "text,pred_label\na dog,animal\n") == (
        "taken.csv: column 'pred_label' has a name this classification export writes its prediction under "
        "(pred_label, pred_score, pred_top_k); rename that column"
    )
    assert refused("in.csv", "text\na dog\n", "--top-k", "0") == "--top-k=0 must be >= 1"
    assert refused("in.csv", "text\na dog\n", "--batch-size", "0") == "--batch-size=0 must be >= 1"


@pytest.mark.slow
def test_the_cli_refuses_a_lowercasing_tokenizer_on_case_sensitive_targets_before_training(tmp_path):
    (tmp_path / "g2p.jsonl").write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in G2P))
    args = [
        "debug=fast",
        "objective=seq2seq",
        "model=tiny_t5",
        "data=files",
        f"data.train={tmp_path / 'g2p.jsonl'}",
        "tokenizer.lowercase=true",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "TRANSFERLAB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "transferlab.train", *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "error: objective=seq2seq: the trained tokenizer (tokenizer.lowercase=true) cannot encode the targets exactly: "
        "'D AO1 G' decodes as 'd ao1 g' (32 of 32 sampled train targets differ); use tokenizer.lowercase=false"
    )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".hydra", "metrics.json"]  # no tokenizer/, no ckpt
