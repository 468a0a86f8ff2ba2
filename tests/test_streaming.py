"""data.streaming=true (data/streaming.py): shares across ranks x workers, exact resume from a stream position, and
the settings a stream needs, refused in one line before any data is read."""

import gzip
import json
from pathlib import Path

import pytest
import torch
from test_reliability import CLI, _assert_same_training, killed_and_resumed
from torch.utils.data import DataLoader

from transferlab.data.streaming import StreamBlocks, as_is

DATA = Path(__file__).resolve().parent.parent / "data" / "wordnet_corpus"


def _stack(blocks):
    return {"input_ids": torch.stack(list(blocks))}


def test_two_ranks_by_two_workers_see_every_example_once_per_pass(tmp_path):
    from datasets import load_dataset

    path = tmp_path / "numbers.txt"
    path.write_text("".join(f"{i}\n" for i in range(301)))
    stream = load_dataset("text", data_files={"train": str(path)}, split="train", streaming=True)

    def encode(batch):  # one token per example: a block of 1 names the example it came from
        return {"input_ids": [[int(t)] for t in batch["text"]]}

    seen = []
    for rank in (0, 1):
        ds = StreamBlocks(stream, encode, 1, "numbers").configure(
            1, _stack, True, seed=0, shuffle_buffer=50, rank=rank, world=2
        )
        finished, shares = set(), set()
        for batch in DataLoader(ds, batch_size=None, collate_fn=as_is, num_workers=2):
            share, (epoch, *_) = batch["stream"]
            shares.add(share)
            if epoch > 0:  # this share has started its second pass
                finished.add(share)
                if len(finished) == 2:
                    break
                continue
            seen.append(int(batch["input_ids"][0, 0]))
        assert shares == {2 * rank, 2 * rank + 1}
    assert sorted(seen) == list(range(301))  # 4 shares, none overlapping, none missing
    assert seen[:20] != sorted(seen[:20])  # and shuffled


def _corpus(tmp_path: Path) -> tuple[Path, Path]:
    with gzip.open(DATA / "train.jsonl.gz", "rt") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(1500), f)]
    train, val = tmp_path / "corpus.txt", tmp_path / "val.txt"
    train.write_text("\n".join(texts[200:]) + "\n")
    val.write_text("\n".join(texts[:200]) + "\n")
    return train, val


@pytest.mark.slow
def test_a_killed_streaming_run_resumes_from_the_next_unseen_example(tmp_path):
    """kill -9 mid-run, resume=auto: the run continues each share of the stream (2 loader workers) where its last
    trained batch ended, and ends with the uninterrupted run's weights, optimizer state and metrics."""
    train, val = _corpus(tmp_path)
    args = [
        "experiment=pretrain_mlm",
        "data=files",
        f"data.train={train}",
        f"data.validation={val}",
        "data.test=null",
        "data.streaming=true",
        "data.num_workers=2",
        "data.shuffle_buffer=100",
        "data.max_seq_len=32",
        "data.batch_size=8",
        "tokenizer.train_samples=500",
        "tokenizer.vocab_size=2000",
        "trainer.max_steps=12",
        "trainer.val_check_interval=6",
        "data.max_eval_samples=40",
        "callbacks.checkpoint.every_n_train_steps=2",
        "trainer.deterministic=true",
        "seed=7",
        "logger=default",
        "callbacks.progress_bar=false",
        "model=tiny_bert",
    ]
    ref, cut, killed = killed_and_resumed(tmp_path, args)
    assert 0 < killed["global_step"] < 12 and len(killed["transferlab"]["stream"]["positions"]) == 2
    _assert_same_training(ref, cut)


@pytest.mark.slow
def test_under_ddp_each_rank_streams_its_share_and_the_checkpoint_keeps_both_positions(tmp_path):
    import os
    import subprocess

    train, val = _corpus(tmp_path)
    run = tmp_path / "run"
    args = [
        "experiment=pretrain_mlm",
        "trainer=ddp_cpu",
        "data=files",
        f"data.train={train}",
        f"data.validation={val}",
        "data.test=null",
        "data.streaming=true",
        "data.max_seq_len=32",
        "data.batch_size=8",
        "tokenizer.train_samples=500",
        "tokenizer.vocab_size=2000",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "data.max_eval_samples=40",
        "callbacks.checkpoint.every_n_train_steps=2",
        "logger=none",
        "callbacks.progress_bar=false",
        "model=tiny_bert",
        f"hydra.run.dir={run}",
    ]
    out = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert out.returncode == 0, out.stderr[-3000:]
    stream = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["transferlab"]["stream"]
    assert stream["shares"] == 2 and sorted(stream["positions"]) == [
        0,
        1,
    ]  # rank 1's position gathered into rank 0's file
    assert all(position[3] == 6 for position in stream["positions"].values())  # 6 batches each, in their first pass
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"


MLM = ["experiment=pretrain_mlm", "data=files", "data.streaming=true"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [*MLM, "tokenizer.train_samples=100"],
            "data.streaming=true reads a stream with no length, so no epoch ends; set trainer.max_steps=N",
        ),
        (
            [*MLM, "trainer.max_steps=5"],
            "data.streaming=true with tokenizer=train learns from the stream's first texts; set "
            "tokenizer.train_samples=N",
        ),
        (
            [
                "experiment=quickstart",
                "data=files",
                "data.label_column=label",
                "data.streaming=true",
                "trainer.max_steps=5",
            ],
            "data.streaming=true packs text as it is read, which objective=classification does not do; use "
            "objective=mlm|clm|span_corruption, or data.streaming=false",
        ),
    ],
)
def test_a_stream_without_what_it_needs_is_refused_before_any_data_is_read(tmp_path, args, message):
    import subprocess

    path = tmp_path / "corpus.txt"  # only its existence is checked: validation reads no data
    path.write_text("x\n")
    out = subprocess.run(
        [*CLI, *args, f"data.train={path}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == f"error: {message}"
