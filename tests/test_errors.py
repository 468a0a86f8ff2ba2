"""The bad-input catalogue, through the real CLI in a subprocess.

Every case exits non-zero with one stderr line naming the problem and the fix (no traceback), answers before
training starts (no checkpoints/ or export/), records status failed in its own fresh run dir, and leaves an
earlier run's dir untouched. Config errors answer in the preflight (well under a second); input errors answer after
reading the data, still before torch, Lightning and transformers load.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

DATA_ROWS = [("the cat sleeps on a mat", "animal"), ("a red car drives fast", "vehicle")] * 10


def _csv(path: Path, header: str, rows) -> str:
    path.write_text("\n".join([header, *(f"{text},{label}" for text, label in rows)]) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("bad_inputs")
    ok = _csv(d / "train.csv", "text,label", DATA_ROWS)
    jsonl = d / "bad.jsonl"
    jsonl.write_text('{"text": "a cat", "label": "animal"}\n{"text": "a car", "label": "vehicle"}\n{"text": oops}\n')
    latin = d / "latin1.csv"
    latin.write_bytes(
        b"text,label\ncaf\xe9 au lait,drink\n" + "".join(f"{t},{label}\n" for t, label in DATA_ROWS).encode()
    )
    (d / "empty.csv").write_bytes(b"")
    ckpt = d / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(256, 256)}, "loops": {}, "optimizer_states": []}, ckpt)
    truncated = d / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    ner = "John B-PER\nlives O\n\nParis B-LOC\n\n"
    (d / "ner.conll").write_text(ner * 10)
    (d / "ner_unseen.conll").write_text("Acme B-ORG\n\n")
    (d / "ner_bad.conll").write_text("John NNP B-PER\nlives VBZ O\n\nParis B-LOC\n")
    (d / "tags_short.jsonl").write_text(
        '{"tokens": ["a"], "tags": ["O"]}\n' * 2 + '{"tokens": ["a", "b"], "tags": ["O"]}\n'
    )
    (d / "no_tags.jsonl").write_text('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [], "tags": []}\n' * 5)
    qa = {
        "question": "which colour is the door?",
        "context": "the door is red",
        "answers": {"text": ["red"], "answer_start": [12]},
    }
    misplaced = {**qa, "answers": {"text": ["blue"], "answer_start": [4]}}
    (d / "qa_misplaced.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [qa, misplaced, qa]))
    (d / "qa_no_answer.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [qa, qa, {**qa, "answers": {"text": [], "answer_start": []}}])
    )
    squad = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "the door is red",
                        "qas": [
                            {"id": "a", "question": "which colour?", "answers": [{"text": "red", "answer_start": 12}]},
                            {"id": "b", "answers": []},
                        ],
                    }
                ]
            }
        ]
    }
    (d / "squad_bad.json").write_text(json.dumps(squad))
    impossible = {"id": "c", "question": "which size?", "is_impossible": True}
    impossible["answers"] = [{"text": "red", "answer_start": 12}]
    bad_v2 = {"data": [{"paragraphs": [{"context": "the door is red", "qas": [impossible]}]}]}
    (d / "squad_v2_bad.json").write_text(json.dumps(bad_v2))
    (d / "squad_qas_bad.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": "x", "qas": {}}]}]}))
    (d / "no_target.jsonl").write_text('{"source": "a b", "text": "x"}\n{"source": "c d", "text": "y"}\n')
    (d / "empty_target.jsonl").write_text(
        '{"source": "a b", "target": "x"}\n{"source": "c d", "target": " "}\n{"source": "e f", "target": "z"}\n'
    )
    ml = '{"text": "a cat", "labels": ["animal"]}\n{"text": "a red car", "labels": ["vehicle", "red"]}\n'
    (d / "ml_ok.jsonl").write_text(ml * 5)
    (d / "ml_scalar.jsonl").write_text(ml + '{"text": "a dog", "labels": "animal"}\n')
    (d / "ml_unseen.jsonl").write_text('{"text": "a boat", "labels": ["boat", "red"]}\n')
    (d / "ml_gap.csv").write_text("text,labels\n" + "a cat,animal\na red car,vehicle;;red\n" * 5)
    (d / "bare_model").mkdir()  # a model dir without tokenizer files
    (d / "bare_model" / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    gaps = d / "gaps.csv"  # an empty label cell on file line 3, an empty text cell on line 4
    gaps.write_text(
        "text,label\nthe cat sleeps,animal\na red car,\n,vehicle\n"
        + "".join(f"{t},{label}\n" for t, label in DATA_ROWS)
    )
    pairs_gap = d / "pairs_gap.csv"  # an empty second text on file line 3
    pairs_gap.write_text(
        "text,second,label\nthe cat sleeps,a dog,animal\na red car,,vehicle\n"
        + "".join(f"{t},{t},{label}\n" for t, label in DATA_ROWS)
    )
    return {
        "ok": ok,
        "pairs_gap": str(pairs_gap),
        "no_label": _csv(d / "no_label.csv", "text,category", DATA_ROWS),
        "no_text": _csv(d / "no_text.csv", "sentence,label", DATA_ROWS),
        "unseen_test": _csv(d / "unseen_test.csv", "text,label", [("a green boat", "boat")]),
        "scores_bad": _csv(d / "scores_bad.csv", "text,label", [("a cat", "1.5"), ("a car", "NA"), ("a dog", "2")] * 7),
        "empty": str(d / "empty.csv"),
        "bad_jsonl": str(jsonl),
        "latin1": str(latin),
        "truncated": str(truncated),
        "gaps": str(gaps),
        "bare_model": str(d / "bare_model"),
        **{
            name: str(d / f"{name}.{ext}")
            for name, ext in (
                ("ner", "conll"),
                ("ner_unseen", "conll"),
                ("ner_bad", "conll"),
                ("no_tags", "jsonl"),
                ("tags_short", "jsonl"),
                ("qa_misplaced", "jsonl"),
                ("qa_no_answer", "jsonl"),
                ("squad_bad", "json"),
                ("squad_v2_bad", "json"),
                ("squad_qas_bad", "json"),
                ("no_target", "jsonl"),
                ("empty_target", "jsonl"),
                ("ml_ok", "jsonl"),
                ("ml_scalar", "jsonl"),
                ("ml_unseen", "jsonl"),
                ("ml_gap", "csv"),
            )
        },
    }


def _files(**splits) -> list:
    return ["data=files", "data.label_column=label", *(f"data.{k}={{{v}}}" for k, v in splits.items())]


TAGGING = ["objective=token_classification", "data=files"]
QA = ["objective=extractive_qa", "data=files"]
T5 = ["objective=seq2seq", "model=tiny_t5"]
MULTILABEL = ["objective=multilabel_classification", "data=files", "data.label_column=labels"]

# (id, overrides with {file} placeholders, extra env, what the one line must say)
CATALOGUE = [
    (
        "unknown_group_option",
        ["model=tiny_bret"],
        {},
        "unknown model 'tiny_bret' (did you mean 'tiny_bert'?); available: pretrained, tiny_bert, tiny_gpt2",
    ),
    ("unknown_key", ["optimizer.lrr=1"], {}, "unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"),
    (
        "group_left_out",
        ["init=pretrained"],
        {},
        "error: init is a config group this config does not include (pretrained, scratch); "
        "add it with a plus: +init=pretrained",
    ),
    ("wrong_type", ["optimizer.lr=abc"], {}, "optimizer.lr: expected a float, got 'abc'"),
    (
        "compile_mode_without_compile",
        ["compile_mode=max-autotune"],
        {},
        "compile_mode=max-autotune applies only when compiling; add compile=true, or drop compile_mode",
    ),
    (
        "bucket_window_without_bucketing",
        ["data.bucket_by_length=false", "data.bucket_window=8"],
        {},
        "data.bucket_window=8 sorts nothing with data.bucket_by_length=false; drop one of the two",
    ),
    (
        "clm_on_encoder",
        ["objective=clm", "model=tiny_bert"],
        {},
        "objective=clm needs a decoder-only model, but model type 'bert' is encoder-only",
    ),
    (
        "missing_label_column",
        _files(train="no_label"),
        {},
        "has no column 'label'; columns found: 'text', 'category'; set data.label_column=",
    ),
    ("empty_file", _files(train="empty"), {}, "empty.csv is empty; give a file with at least one example"),
    ("malformed_jsonl", _files(train="bad_jsonl"), {}, "bad.jsonl:3: malformed JSON line"),
    (
        "missing_text_column",
        _files(train="no_text"),
        {},
        "has no column 'text'; columns found: 'sentence', 'label'; set data.text_column=",
    ),
    (
        "model_dir_missing",
        ["model=pretrained", "tokenizer=pretrained", "model.name_or_path=./no/such/model"],
        {},
        "model.name_or_path=./no/such/model: no such local directory (looked locally at",
    ),
    (
        "hub_id_offline",
        ["model=pretrained", "tokenizer=pretrained", "model.name_or_path=nobody/no-such-model"],
        {"HF_HUB_OFFLINE": "1"},
        "not a local directory (looked locally) and not in the HF cache, and offline mode is on (HF_HUB_OFFLINE=1)",
    ),
    (
        "model_dir_without_tokenizer",
        ["model=pretrained", "tokenizer=pretrained", "model.name_or_path={bare_model}"],
        {},
        "bare_model: no tokenizer files in it (tokenizer.json, tokenizer_config.json or a vocabulary), so every word "
        "would read as unknown; use tokenizer=train, or tokenizer.name_or_path=DIR",
    ),
    ("top_k_too_deep", ["freeze=top_k", "freeze.k=5"], {}, "freeze.k=5 but the model has 2 blocks; use freeze.k <= 2"),
    ("resume_missing", ["resume=/no/such/last.ckpt"], {}, "resume=/no/such/last.ckpt: no such checkpoint file"),
    (
        "resume_truncated",
        ["resume={truncated}"],
        {},
        "truncated.ckpt: not a readable checkpoint, truncated or corrupt?",
    ),
    ("test_label_unseen", _files(train="ok", test="unseen_test"), {}, "data.test has labels never seen in train: boat"),
    (
        "regression_target_not_number",
        ["objective=regression", *_files(train="scores_bad")],
        {},
        "scores_bad.csv) line 3: target 'NA' is not a number; objective=regression reads one number per row "
        "(e.g. 3.5): fix the cell, or leave it empty (see data.missing)",
    ),
    (
        "max_seq_len_too_long",
        ["data.max_seq_len=1024"],
        {},
        "data.max_seq_len=1024 exceeds the model's 512 position embeddings",
    ),
    ("train_fraction_zero", ["data.train_fraction=0"], {}, "data.train_fraction=0.0 must be in (0, 1]"),
    ("train_fraction_above_one", ["data.train_fraction=1.5"], {}, "data.train_fraction=1.5 must be in (0, 1]"),
    (
        "non_utf8",
        _files(train="latin1"),
        {},
        "latin1.csv: invalid UTF-8 at byte offset 14; fix the file, or set data.encoding_errors=replace",
    ),
    (
        "empty_cells",
        _files(train="gaps"),
        {},
        "gaps.csv) has empty values: 'text' at line 4; 'label' at line 3; fill them in, or set data.missing=drop",
    ),
    (
        "pair_column_missing",
        [*_files(train="ok"), "data.text_pair_column=second"],
        {},
        "train.csv) has no column 'second'; columns found: 'text', 'label'; set data.text_pair_column=<one of them>",
    ),
    (
        "pair_text_empty",
        [*_files(train="pairs_gap"), "data.text_pair_column=second"],
        {},
        "pairs_gap.csv) has empty values: 'second' at line 3; fill them in, or set data.missing=drop",
    ),
    ("batch_size_zero", ["data.batch_size=0"], {}, "data.batch_size=0 must be >= 1"),
    ("lr_negative", ["optimizer.lr=-1"], {}, "optimizer.lr=-1.0 must be > 0"),
    (
        "max_steps_negative",
        ["trainer.max_steps=-5"],
        {},
        "trainer.max_steps=-5 must be >= 1 (or -1); -1 means no step limit",
    ),
    ("warmup_ratio_above_one", ["scheduler.warmup_ratio=1.5"], {}, "scheduler.warmup_ratio=1.5 must be in [0, 1]"),
    ("weight_decay_negative", ["optimizer.weight_decay=-0.1"], {}, "optimizer.weight_decay=-0.1 must be >= 0"),
    (
        "eval_samples_zero",
        ["data.max_eval_samples=0"],
        {},
        "data.max_eval_samples=0 must be >= 1; a positive number of examples, or null for all",
    ),
    (
        "mask_probability",
        ["experiment=pretrain_mlm", "objective.mlm_probability=1.5"],
        {},
        "objective.mlm_probability=1.5 must be in [0, 1]",
    ),
    (
        "top_k_zero",
        ["freeze=top_k", "freeze.k=0"],
        {},
        "freeze.k=0 must be >= 1; freeze=backbone trains the head alone",
    ),
    ("llrd_decay_zero", ["freeze=llrd", "freeze.decay=0"], {}, "freeze.decay=0.0 must be in (0, 1]"),
    ("gradual_every_zero", ["freeze=gradual", "freeze.unfreeze_every=0"], {}, "freeze.unfreeze_every=0 must be >= 1"),
    ("lora_rank_zero", ["freeze=lora", "freeze.r=0"], {}, "freeze.r=0 must be >= 1"),
    (
        "unknown_peft_method",
        ["freeze=peft", "freeze.method=lorra"],
        {},
        "freeze.method=lorra is not one of: adalora, dora, ia3, lora, prefix_tuning, prompt_tuning",
    ),
    ("missing_policy", ["data.missing=skip"], {}, "data.missing=skip is not one of: drop, error"),
    (
        "callback_target_missing",
        ["callbacks.extra=[{{_target_:my_callbacks.Recorder}}]"],
        {},
        "callbacks.extra[0]._target_=my_callbacks.Recorder cannot be imported (No module named 'my_callbacks'); "
        "check the dotted path, and that its module is on PYTHONPATH",
    ),
    (
        "load_in_on_cpu",
        [
            "model=pretrained",
            "model.name_or_path=org/model",
            "tokenizer=pretrained",
            "freeze=lora",
            "model.load_in=4bit",
        ],
        {"CUDA_VISIBLE_DEVICES": ""},
        "model.load_in=4bit needs a CUDA GPU and bitsandbytes; here no CUDA GPU: run it on a CUDA machine with "
        "pip install transferlab[quantize], or drop model.load_in (model.load_in=null)",
    ),
    (
        "conll_columns",
        [*TAGGING, "data.train={ner_bad}"],
        {},
        "ner_bad.conll:4: 2 columns, but line 1 has 3; every token line needs",
    ),
    (
        "tag_unseen",
        [*TAGGING, "data.train={ner}", "data.test={ner_unseen}"],
        {},
        "data.test has tags never seen in train: B-ORG",
    ),
    (
        "empty_tag_list",
        [*TAGGING, "data.train={no_tags}"],
        {},
        "has empty values: 'tokens' at lines 2, 4, 6, 8, 10; 'tags' at lines 2, 4, 6, 8, 10; fill them in",
    ),
    (
        "tags_per_word",
        [*TAGGING, "data.train={tags_short}"],
        {},
        "tags_short.jsonl) line 3 has 2 words but 1 tags; give one tag per word",
    ),
    (
        "qa_answer_misplaced",
        [*QA, "data.train={qa_misplaced}"],
        {},
        "qa_misplaced.jsonl) line 2: answer 'blue' is not at answer_start 4 of its context (found 'door'); fix "
        "answer_start or the answer text",
    ),
    (
        "qa_no_answer",
        [*QA, "data.train={qa_no_answer}", "objective.allow_no_answer=false"],
        {},
        "qa_no_answer.jsonl): the question 'which colour is the door?' has no answer; with "
        "objective.allow_no_answer=false extractive_qa needs at least one per question (SQuAD v1.1); "
        "set objective.allow_no_answer=true",
    ),
    (
        "qa_tune_null_threshold_without_unanswerables",
        [*QA, "data.train={qa_no_answer}", "objective.tune_null_threshold=true", "objective.allow_no_answer=false"],
        {},
        "objective.tune_null_threshold=true tunes when to predict no answer, but objective.allow_no_answer=false; "
        "set one of them the other way",
    ),
    (
        "squad_v2_impossible_with_answers",
        [*QA, "data.train={squad_v2_bad}", "data.format=squad"],
        {},
        "squad_v2_bad.json: data[0].paragraphs[0].qas[0] has is_impossible true and 1 answers; empty its answers",
    ),
    (
        "squad_qas_not_a_list",
        [*QA, "data.train={squad_qas_bad}", "data.format=squad"],
        {},
        "squad_qas_bad.json: data[0].paragraphs[0].qas is not a list (dict); data.format=squad reads SQuAD",
    ),
    (
        "squad_malformed",
        [*QA, "data.train={squad_bad}", "data.format=squad"],
        {},
        "squad_bad.json: data[0].paragraphs[0].qas[1] lacks or mistypes 'question'; each question needs 'question' "
        "and 'answers'",
    ),
    (
        "seq2seq_on_encoder",
        ["objective=seq2seq", "model=tiny_bert", "data=wordnet_definitions"],
        {},
        "objective=seq2seq needs an encoder-decoder model, but model type 'bert' is encoder-only (bidirectional); "
        "use objective=mlm, "
        "or a model it accepts such as model=tiny_t5",
    ),
    (
        "sft_on_encoder",
        ["objective=sft", "model=tiny_bert", "data=wordnet_definitions"],
        {},
        "objective=sft needs a decoder-only model, but model type 'bert' is encoder-only (bidirectional)",
    ),
    (
        "span_corruption_on_decoder",
        ["objective=span_corruption", "model=tiny_gpt2"],
        {},
        "objective=span_corruption needs an encoder-decoder model, but model type 'gpt2' is decoder-only (causal); "
        "use objective=clm|sft",
    ),
    (
        "num_beams_zero",
        [*T5, "data=wordnet_definitions", "objective.generation.num_beams=0"],
        {},
        "objective.generation.num_beams=0 must be >= 1",
    ),
    (
        "new_tokens_beyond_positions",
        ["objective=sft", "model=tiny_gpt2", "data=wordnet_definitions", "objective.generation.max_new_tokens=500"],
        {},
        "objective.generation.max_new_tokens=500 after a prompt of up to data.max_seq_len=64 tokens exceeds the "
        "model's 512 positions",
    ),
    (
        "missing_target_column",
        [*T5, "data=files", "data.train={no_target}"],
        {},
        "has no column 'target'; columns found: 'source', 'text'; set data.target_column=",
    ),
    (
        "empty_target",
        [*T5, "data=files", "data.train={empty_target}"],
        {},
        "empty_target.jsonl) has empty values: 'target' at line 2; fill them in",
    ),
    (
        "multilabel_label_not_list",
        [*MULTILABEL, "data.train={ml_scalar}"],
        {},
        'ml_scalar.jsonl) line 3: label cell "animal" is not a list of labels; give a list (JSON/JSONL/parquet), '
        "or set data.label_separator=<the text between labels> (e.g. ';') to split text cells",
    ),
    (
        "multilabel_empty_label",
        [*MULTILABEL, "data.train={ml_gap}", 'data.label_separator=";"'],
        {},
        'ml_gap.csv) line 3: labels ["vehicle", "", "red"] hold an empty label (an empty list item, or separators '
        "with nothing between them); remove it",
    ),
    (
        "multilabel_label_unseen",
        [*MULTILABEL, "data.train={ml_ok}", "data.test={ml_unseen}"],
        {},
        "ml_unseen.jsonl) has labels never seen in train: boat; the model cannot predict them",
    ),
    (
        "label_separator_unread",
        ["data=files", "data.train={ok}", 'data.label_separator=";"'],
        {},
        "data.label_separator=; is read by objective=multilabel_classification only, not objective=classification; "
        "use objective=multilabel_classification, or drop data.label_separator",
    ),
    (
        "stream_without_steps",
        ["experiment=pretrain_mlm", "data.streaming=true", "trainer.max_steps=-1"],
        {},
        "data.streaming=true reads a stream with no length, so no epoch ends; set trainer.max_steps=N",
    ),
    (
        "mix_weight_not_positive",
        [
            "data=mix",
            "data.sources=[{{name: wordnet_topics, weight: 1}}, {{name: wordnet_topics, weight: 1}}]",  # {{: format
            "data.sources.1.weight=0",
        ],
        {},
        "data.sources.1.weight=0 must be a positive number (a source's share of the training draws); "
        "set data.sources.1.weight=1, or drop that source",
    ),
]


def _cli(args: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "transferlab.train", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overrides, env, message", [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_bad_input_answers_in_one_line_before_training(files, tmp_path, overrides, env, message):
    earlier = tmp_path / "earlier_run"
    earlier.mkdir()
    (earlier / "marker.txt").write_text("an earlier run")
    (earlier / "metrics.json").write_text(json.dumps({"status": "ok", "test/acc": 0.9}))
    before = _snapshot(earlier)
    run = tmp_path / "run"

    args = [o.format(**files) for o in overrides]
    out = _cli(["debug=fast", *args, f"hydra.run.dir={run}"], env, cwd=tmp_path)

    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode != 0
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in out.stderr + out.stdout
    assert not (run / "checkpoints").exists() and not (run / "export").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and lines[0].removeprefix("error: ") in metrics["error"]
    assert _snapshot(earlier) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier_run", "run"]


def test_full_traceback_only_when_asked(files, tmp_path):
    args = ["debug=fast", *[o.format(**files) for o in _files(train="no_text")], f"hydra.run.dir={tmp_path / 'run'}"]
    quiet = _cli(args, {}, cwd=tmp_path)
    loud = _cli([*args, "verbose=true"], {}, cwd=tmp_path)
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "has no column 'text'" in loud.stderr.splitlines()[-1]
