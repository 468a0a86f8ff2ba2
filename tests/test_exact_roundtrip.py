"""A user's own file, end to end, through the CLI: train -> export -> predict changes no cell, drops no row, and a
case-sensitive target keeps its case (issue: read exactly as written)."""

import csv
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

NA = ["nan", "NaN", "NA", "N/A", "n/a", "#N/A", "None", "null", "NULL", "-nan", "<NA>", "1.#QNAN"]
LABELS = ["001", "1", "002"]


def _run(args, cwd, cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFERLAB_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _cells(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_a_csv_of_na_strings_leading_zeros_numbers_and_quotes_round_trips_unchanged(tmp_path):
    rows = [["text", "label", "id"]]
    for i in range(60):
        text = [NA[i % len(NA)], str(1000 + i), f'she said "hi, {i}"', f"café {i}\tand a tab"][i % 4]
        rows.append([text, LABELS[i % 3], f"{i:03d}"])
    data = tmp_path / "mine.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    run = tmp_path / "run"
    train = _run(
        [
            "transferlab.train",
            "debug=fast",
            "data=files",
            f"data.train={data}",
            f"data.validation={data}",
            f"data.test={data}",
            "data.missing=drop",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
        tmp_path / "cache",
    )
    assert train.returncode == 0, train.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and not any(k.startswith("data/dropped") for k in metrics)  # no row taken
    config = json.loads((run / "export" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["001", "002", "1"]  # three classes, as written

    out = tmp_path / "predicted.csv"
    predict = _run(
        ["transferlab.cli.predict", str(run / "export"), str(data), "--out", str(out)], tmp_path, tmp_path / "cache"
    )
    assert predict.returncode == 0, predict.stderr[-2000:]
    got = _cells(out)
    assert got[0] == ["text", "label", "id", "pred_label", "pred_score"]
    assert [r[:3] for r in got] == rows  # every input cell, byte for byte, in order: 0 cells changed
    assert {r[3] for r in got[1:]} <= set(LABELS)


def test_real_words_and_pronunciations_with_nan_train_with_no_row_lost_and_targets_keep_their_case(tmp_path):
    words = {
        "nan": "N AA1 N",
        "null": "N AH1 L",
        "none": "N AH1 N",
        "na": "N AA1",
        "dog": "D AO1 G",
        "cat": "K AE1 T",
        "tree": "T R IY1",
        "mosko": "M AA1 S K OW0",
        "digit": "D IH1 JH AH0 T",
        "apple": "AE1 P AH0 L",
        "night": "N AY1 T",
        "note": "N OW1 T",
    }
    lines = ["source,target", *[f"{w},{p}" for w, p in words.items()] * 3]
    data = tmp_path / "g2p.csv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    train = _run(
        [
            "transferlab.train",
            "debug=fast",
            "objective=seq2seq",
            "model=tiny_t5",
            "data=files",
            f"data.train={data}",
            f"data.validation={data}",
            f"data.test={data}",
            "tokenizer.vocab_size=300",
            "data.max_eval_samples=null",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
        tmp_path / "cache",
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
    predictions = [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(predictions) == len(words) * 3  # the word `nan` and its kin are rows like any other
    by_source = {p["source"]: p["reference"] for p in predictions}
    assert by_source == words  # references exactly as written: upper case, stress digits kept
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    for target in words.values():  # what the model is trained to produce is the target as written
        assert tokenizer.decode(tokenizer(target)["input_ids"], skip_special_tokens=True) == target
