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
NO_TOKENIZER = ("no tokenizer files in it (tokenizer.json, tokenizer_config.json or a vocabulary), so every word would "
                "read as unknown")
COPY = "copy the tokenizer files the model was trained with into it"


def _pairs(rows=G2P):
    from datasets import Dataset

    return Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})


def _compose(*overrides):
    from transferlab.cli import compose

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
    from transferlab.objectives import OBJECTIVES
    from transferlab.tokenizer import build_tokenizer

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    cfg = _compose()
    assert cfg.tokenizer.lowercase is False and "lowercase: false" in OmegaConf.to_yaml(cfg.tokenizer).splitlines()
    tokenizer = build_tokenizer(cfg, _pairs(), tmp_path / "run", True, OBJECTIVES["seq2seq"])
    targets = [t for _, t in G2P[:4]]
    assert tokenizer.batch_decode(tokenizer(targets)["input_ids"], skip_special_tokens=True) == targets
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").is_file()
