"""Summarization on the embedded manual pages: the data as shipped (splits, a row, the licence), the builder's roff
reading, and experiment=summarize_scratch end to end."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import single_thread

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data"))  # the builder is a script, not part of the package

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def _shipped(split: str) -> list:
    return [json.loads(line) for line in gzip.open(REPO / f"data/manpages_summary/{split}.jsonl.gz", "rt")]


def _splits(overrides=()):
    from transferlab.cli.front import compose
    from transferlab.data.loading import load_splits
    from transferlab.objectives import OBJECTIVES

    cfg = compose(["experiment=summarize", "model.name_or_path=unused", *overrides])
    raw, dropped = load_splits(cfg.data, OBJECTIVES["seq2seq"])
    assert dropped == {}
    return raw


def test_the_embedded_pages_read_with_their_exact_counts_and_contents():
    raw = _splits()
    assert {split: len(ds) for split, ds in raw.items()} == {"train": 2031, "validation": 240, "test": 263}
    rows = {row["page"]: row for row in _shipped("test")}
    assert rows["base64.1"]["target"] == "base64 encode/decode data and print to standard output"
    assert rows["base64.1"]["source"].startswith(
        "Base64 encode or decode FILE, or standard input, to standard output. With no FILE, or when FILE is -, read"
    )
    first = raw["test"][0]
    assert (first["source"], first["target"]) == (rows["base64.1"]["source"], rows["base64.1"]["target"])
    pages = {split: {row["page"] for row in _shipped(split)} for split in raw}
    assert not pages["train"] & pages["test"] and not pages["train"] & pages["validation"]  # split by page


def test_the_licences_ship_next_to_the_data_and_the_data_config_names_them():
    text = (REPO / "data" / "LICENSE.manpages").read_text()
    for heading in (
        "manpages 6.03-2",
        "coreutils 9.1-1",
        "git-man",
        "libssl-doc",
        "perl-doc",
        "GPL-2 (full text)",
        "GPL-3 (full text)",
        "Apache-2.0 (full text)",
        "Artistic (full text)",
    ):
        assert heading in text, heading
    from transferlab.cli.front import compose

    assert "data/LICENSE.manpages" in compose(["data=manpages_summary"]).data.license


ROFF = r""".\" a comment
.TH OPEN 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
open, openat \- open and possibly create a file
.SH SYNOPSIS
.nf
.B #include <fcntl.h>
.fi
.SH DESCRIPTION
The
.BR open ()
system call opens the file specified by
.IR pathname .
It returns a \fBfile descriptor\fP, \(lqa small integer\(rq\(em\e0 is not one.
.PP
.TP
.B O_CREAT
Create it\-if absent
.nf
int x = 0;
.fi
(see
.BR openat (2)).
.SH "SEE ALSO"
.BR close (2)
"""


def test_the_builder_reads_a_pages_name_summary_and_description_from_its_roff():
    import build_manpages

    source, target = build_manpages.summary_pair(ROFF)
    assert target == "open and possibly create a file"
    assert source == (
        "The open() system call opens the file specified by pathname. It returns a file descriptor, "
        "\u201ca small integer\u201d\u2014\\0 is not one. O_CREAT Create it-if absent (see openat(2))."
    )
    assert build_manpages.summary_pair(ROFF.replace(r"open, openat \- ", "open ")) is None  # no summary
    assert (build_manpages.split_of("open.2"), build_manpages.split_of("base64.1")) == ("train", "test")


@pytest.mark.slow
def test_summarize_from_scratch_trains_generates_and_scores_on_the_embedded_pages(tmp_path):
    """experiment=summarize_scratch reads a T5 export (here a tiny one with a vocabulary of the pages, in place of
    pretrain_t5's) for its architecture and tokenizer, and trains it from random weights."""
    from conftest import train_in_process

    base = tmp_path / "base"
    overrides = ["model=tiny_t5", "objective=seq2seq", "data=manpages_summary", "tokenizer=train", "debug=fast"]
    train_in_process([*overrides, "tokenizer.vocab_size=600", f"hydra.run.dir={base}"], base)
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "transferlab.train", "experiment=summarize_scratch", "debug=fast"]
    overrides = [f"model.name_or_path={base / 'export'}", "objective.generation.max_new_tokens=8"]
    overrides += [f"hydra.run.dir={run}", "callbacks.progress_bar=false"]
    out = subprocess.run([*cli, *overrides], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and {"test/rougeL", "test/bleu", "test/loss"} <= set(metrics)
    config = (run / ".hydra" / "config.yaml").read_text()
    assert "random_init: true" in config and "source_prefix: 'summarize: '" in config
    rows = [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 32  # debug=fast's data.max_eval_samples
    references = {row["target"] for row in _shipped("test")}
    assert {r["reference"] for r in rows} <= references
