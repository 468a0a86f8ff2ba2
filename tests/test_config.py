"""Composition of every preset, and the one-line validation errors (before any heavy import or data read)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transferlab.cli.front import compose, preflight
from transferlab.config import CONF_DIR
from transferlab.config.resolvers import latest_run_export
from transferlab.errors import TransferlabError

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_every_group_has_real_members():
    for group in (
        "model",
        "objective",
        "freeze",
        "data",
        "tokenizer",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "hydra",
        "experiment",
        "debug",
    ):
        assert list((CONF_DIR / group).glob("*.yaml")), group
    assert {p.stem for p in (CONF_DIR / "freeze").glob("*.yaml")} == {
        "none",
        "backbone",
        "top_k",
        "gradual",
        "llrd",
        "bitfit",
        "lora",
        "peft",
    }


# What each preset sets, on top of the defaults (a preset that stops setting one of these, or a new preset without an
# entry, fails here).
PRESETS = {
    "finetune": {
        "objective.name": "classification",
        "freeze.name": "none",
        "data.name": "wordnet_topics",
        "tokenizer.source": "pretrained",
    },
    "lora": {
        "objective.name": "classification",
        "freeze.name": "lora",
        "tokenizer.source": "pretrained",
        "optimizer.lr": 2.0e-3,
    },
    "pretrain_clm": {
        "objective.name": "clm",
        "model.arch": "gpt2",
        "data.name": "wordnet_corpus",
        "tokenizer.source": "train",
        "data.max_seq_len": 64,
    },
    "pretrain_mlm": {
        "objective.name": "mlm",
        "model.arch": "modernbert",
        "data.name": "wordnet_corpus",
        "objective.mlm_probability": 0.15,
        "tokenizer.vocab_size": 4000,
        "data.max_seq_len": 64,
        "trainer.max_epochs": 12,
    },
    "pos": {
        "objective.name": "token_classification",
        "data.name": "brown_pos",
        "model.arch": "bert",
        "tokenizer.source": "train",
        "data.text_column": "tokens",
        "data.label_column": "tags",
    },
    "pos_finetune": {
        "objective.name": "token_classification",
        "data.name": "brown_pos",
        "tokenizer.source": "pretrained",
        "freeze.name": "none",
    },
    "probe": {
        "objective.name": "classification",
        "freeze.name": "backbone",
        "tokenizer.source": "pretrained",
        "optimizer.weight_decay": 0.0,
    },
    "qa": {
        "objective.name": "extractive_qa",
        "data.name": "wordnet_qa",
        "model.arch": "bert",
        "tokenizer.source": "train",
        "data.question_column": "question",
        "data.text_column": "context",
        "data.label_column": "answers",
        "objective.max_seq_len": 128,
    },
    "multilabel": {
        "objective.name": "multilabel_classification",
        "objective.tune_threshold": True,
        "data.name": "wordnet_multilabel",
        "data.label_column": "labels",
        "model.arch": "modernbert",
        "optimizer.lr": 5.0e-4,
        "tokenizer.source": "train",
    },
    "qa_finetune": {
        "objective.name": "extractive_qa",
        "data.name": "wordnet_qa",
        "tokenizer.source": "pretrained",
        "freeze.name": "none",
    },
    "qa_v2": {
        "objective.name": "extractive_qa",
        "data.name": "wordnet_qa_v2",
        "data.format": "squad",
        "model.arch": "bert",
        "tokenizer.source": "train",
        "objective.tune_null_threshold": True,
        "objective.allow_no_answer": None,
    },
    "pretrain_t5": {
        "objective.name": "span_corruption",
        "model.arch": "t5",
        "data.name": "wordnet_corpus",
        "tokenizer.source": "train",
        "tokenizer.vocab_size": 4000,
        "data.max_seq_len": 64,
        "optimizer.name": "adafactor",
        "optimizer.scale_parameter": True,
    },
    "definitions": {
        "objective.name": "seq2seq",
        "data.name": "wordnet_definitions",
        "tokenizer.source": "pretrained",
        "data.source_column": "source",
        "data.target_column": "target",
        "optimizer.name": "adafactor",
        "optimizer.scale_parameter": True,
        "objective.generation.no_repeat_ngram_size": 2,
    },
    "definitions_sft": {
        "objective.name": "sft",
        "data.name": "wordnet_definitions",
        "tokenizer.source": "pretrained",
        "data.max_seq_len": 96,
    },
    "summarize": {
        "objective.name": "seq2seq",
        "data.name": "manpages_summary",
        "tokenizer.source": "pretrained",
        "objective.source_prefix": "summarize: ",
        "model.random_init": False,
        "optimizer.name": "adafactor",
        "trainer.max_epochs": 15,
        "objective.generation.num_beams": 4,
    },
    "summarize_scratch": {
        "objective.name": "seq2seq",
        "data.name": "manpages_summary",
        "tokenizer.source": "pretrained",
        "model.random_init": True,
    },
    "translate": {
        "objective.name": "seq2seq",
        "data.name": "bible_en_es",
        "model.arch": "t5",
        "tokenizer.source": "train",
        "objective.source_prefix": "translate English to Spanish: ",
        "optimizer.name": "adafactor",
    },
    "pairs": {
        "objective.name": "classification",
        "data.name": "wordnet_pairs",
        "model.arch": "bert",
        "tokenizer.source": "train",
        "data.text_column": "sentence1",
        "data.text_pair_column": "sentence2",
    },
    "regression": {
        "objective.name": "regression",
        "objective.standardize": True,
        "data.name": "wordnet_depth",
        "model.arch": "bert",
        "tokenizer.source": "train",
    },
    "quickstart": {
        "objective.name": "classification",
        "model.arch": "bert",
        "tokenizer.source": "train",
        "data.max_train_samples": 20000,
    },
    "study": {
        "objective.name": "classification",
        "data.name": "wordnet_topics",
        "trainer.max_steps": 600,
        "init": "pretrained",
    },
}


def test_every_experiment_has_a_recipe_here():
    assert set(EXPERIMENTS) == set(PRESETS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_sets_its_recipe(experiment, tmp_path):
    from omegaconf import OmegaConf

    needs_source = experiment in (
        "finetune",
        "probe",
        "lora",
        "study",
        "pos_finetune",
        "qa_finetune",
        "definitions",
        "definitions_sft",
        "summarize",
        "summarize_scratch",
    )
    extra = [f"pretrained_source={tmp_path}", f"model.name_or_path={tmp_path}"] if needs_source else []
    cfg = compose([f"experiment={experiment}", *extra])
    assert cfg.task_name == experiment
    for key, value in PRESETS[experiment].items():
        assert OmegaConf.select(cfg, key) == value, key
    fast = compose([f"experiment={experiment}", "debug=fast", *extra])
    assert fast.trainer.max_epochs == 1 and fast.logger.wandb is None  # debug=fast applied on top
    assert fast.objective == cfg.objective and fast.freeze == cfg.freeze  # and nothing of the recipe lost


def test_data_files_names_the_columns_the_objective_reads_unless_told():
    tagging = compose(["objective=token_classification", "data=files", "data.train=x.conll"])
    assert (tagging.data.text_column, tagging.data.label_column) == ("tokens", "tags")
    classifying = compose(["objective=classification", "data=files", "data.train=x.csv", "data.text_column=sentence"])
    assert (classifying.data.text_column, classifying.data.label_column) == ("sentence", "label")
    qa = compose(["objective=extractive_qa", "data=files", "data.train=x.json"])
    assert (qa.data.question_column, qa.data.text_column, qa.data.label_column) == ("question", "context", "answers")
    text_to_text = compose(["objective=seq2seq", "model=tiny_t5", "data=files", "data.train=x.jsonl"])
    assert (text_to_text.data.source_column, text_to_text.data.target_column) == ("source", "target")


@pytest.mark.parametrize("preset", ["gpu", "ddp", "ddp_cpu", "ddp_multinode", "fsdp", "deepspeed", "cpu"])
def test_trainer_presets_compose(preset):
    cfg = compose([f"trainer={preset}"])
    assert cfg.trainer.max_epochs == 3  # inherits default


def test_optuna_preset_composes():
    cfg = compose(["experiment=quickstart", "hparams_search=optuna"])
    params = cfg.hydra.sweeper.params
    assert set(params) == {"optimizer.lr", "optimizer.weight_decay", "scheduler.warmup_ratio"}
    assert cfg.hydra.sweeper.direction == "minimize"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=tiny_bret"],
            "unknown model 'tiny_bret' (did you mean 'tiny_bert'?); available: pretrained, tiny_bert, tiny_gpt2",
        ),
        (["optimizer.lrr=1"], "unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"),
        (["freeze=top_k", "freeze.kk=2"], "unknown key 'freeze.kk' (did you mean 'freeze.k'?)"),
        (["trainer.max_step=3"], "to pass another lightning.Trainer argument use +trainer.max_step=VALUE"),
        (["optimizer.lr=abc"], "optimizer.lr: expected a float, got 'abc'"),
        (["seed=abc"], "seed: expected an integer, got 'abc'"),
        (["objective=clm"], "objective=clm needs a decoder-only model, but model type 'bert' is encoder-only"),
        (
            ["objective=mlm", "model=tiny_gpt2"],
            "objective=mlm needs an encoder-only model, but model type 'gpt2' is decoder-only",
        ),
        (
            ["data.label_column=null"],
            "objective=classification needs a 'label' column, but data=wordnet_topics has no data.label_column; set "
            "data.label_column=<column>, or use objective=mlm|clm",
        ),
        (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
        (["optimizer.lr=-1"], "optimizer.lr=-1.0 must be > 0"),
        (["trainer.max_steps=-5"], "trainer.max_steps=-5 must be >= 1 (or -1); -1 means no step limit"),
        (["scheduler.warmup_ratio=1.5"], "scheduler.warmup_ratio=1.5 must be in [0, 1]"),
        (["objective=mlm", "objective.mlm_probability=-0.1"], "objective.mlm_probability=-0.1 must be in [0, 1]"),
        (["freeze=llrd", "freeze.decay=0"], "freeze.decay=0.0 must be in (0, 1]; 0.8 is a common choice"),
        (["freeze=gradual", "freeze.interval=epochs"], "freeze.interval=epochs is not one of: epoch, step"),
        (["data.missing=skip"], "data.missing=skip is not one of: drop, error"),
        (["callbacks.checkpoint.monitor=val/acc"], "callbacks.checkpoint.monitor=val/acc needs its mode too"),
        (["data.train_fraction=0"], "data.train_fraction=0.0 must be in (0, 1]"),
        (["data.train_fraction=1.5"], "data.train_fraction=1.5 must be in (0, 1]"),
        (["data.max_seq_len=1024"], "data.max_seq_len=1024 exceeds the model's 512 position embeddings"),
        (["model=pretrained"], "model=pretrained needs model.name_or_path"),
        (["resume=/nope/last.ckpt"], "resume=/nope/last.ckpt: no such checkpoint file"),
        (
            ["scheduler.name=cosin"],
            "scheduler.name=cosin is not one of: constant, cosine, cosine_with_restarts, inverse_sqrt, linear",
        ),
        (["data=files", "data.train=/nope.csv", "data.label_column=label"], "data.train: file not found: /nope.csv"),
        (
            ["tokenizer=pretrained"],
            "tokenizer=pretrained loads the tokenizer of a pretrained model, but model.name_or_path is not set",
        ),
    ],
)
def test_validation_errors_name_problem_and_fix(overrides, message):
    with pytest.raises(TransferlabError) as info:
        preflight(overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_cli_answers_bad_config_in_one_line_without_importing_torch(tmp_path):
    code = (
        "import sys; from transferlab.train import main; sys.argv=['transferlab-train','optimizer.lr=abc'];\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('torch' in sys.modules, e.code)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["False", "2"]
    assert out.stderr.strip().splitlines() == [
        "error: optimizer.lr: expected a float, got 'abc' (Value 'abc' of type 'str' could not be converted to Float)"
    ]


@pytest.mark.slow
def test_help_lists_groups_and_the_composed_config_without_importing_torch(tmp_path):
    code = (
        "import sys; from transferlab.train import main; "
        "sys.argv=['transferlab-train','experiment=finetune','--help'];\n"
        "main(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "False"
    assert "freeze: backbone, bitfit, gradual, llrd, lora, none, peft, top_k" in lines
    assert "== Config ==" in lines and "hydra:" not in lines
    assert "  name_or_path: ${run:pretrain_mlm}" in lines  # the config as composed with the given overrides


def _fake_run(root: Path, task: str, stamp: str, status: str, export: bool = True) -> Path:
    run = root / task / "runs" / stamp
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"status": status}))
    if export:
        (run / "export").mkdir()
    return run


def test_run_resolver_picks_newest_successful_run(tmp_path):
    _fake_run(tmp_path, "pretrain_mlm", "2026-01-01_10-00-00_aaaaaa", "ok")
    newest_ok = _fake_run(tmp_path, "pretrain_mlm", "2026-01-02_10-00-00_bbbbbb", "ok")
    _fake_run(tmp_path, "pretrain_mlm", "2026-01-03_10-00-00_cccccc", "failed")
    _fake_run(tmp_path, "pretrain_mlm", "2026-01-04_10-00-00_dddddd", "ok", export=False)
    assert latest_run_export("pretrain_mlm", str(tmp_path)) == str((newest_ok / "export").resolve())
    cfg = compose(["experiment=finetune", f"paths.output_dir={tmp_path}"])
    assert cfg.model.name_or_path == str((newest_ok / "export").resolve())


def test_run_resolver_errors_clearly_when_there_is_none(tmp_path):
    with pytest.raises(
        TransferlabError,
        match=(
            r"found no successful run with an export under .*pretrain_clm/runs; run `transferlab-train "
            r"experiment=pretrain_clm` first"
        ),
    ):
        preflight(["experiment=finetune", f"paths.output_dir={tmp_path}", "model.name_or_path=${run:pretrain_clm}"])
