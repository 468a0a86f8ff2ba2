"""Tests for the transferlab-report CLI on hand-made Hydra multirun trees."""

import csv
import itertools
import json
from pathlib import Path

import pytest
import yaml

from transferlab.report.study import main

INITS = ("pretrained", "scratch")
FREEZES = ("lora", "none")
FRACTIONS = (0.1, 1.0)
SEEDS = (0, 1)


def expected_acc(init, freeze, fraction, seed):
    """Known numbers: seed 0 and 1 differ by 0.10, so every configuration has std 0.0707."""
    base = 0.50 + 0.20 * (init == "pretrained") + 0.05 * (freeze == "lora") + 0.10 * (fraction == 1.0)
    return round(base + (-0.05 if seed == 0 else 0.05), 4)


def make_job(job_dir: Path, *, init, freeze, fraction, seed, metrics=None, with_init_key=True):
    cfg = {
        "seed": seed,
        "task_name": "sst2",
        "data": {"train_fraction": fraction, "cache_dir": f"/tmp/cache/{job_dir.name}"},
        "freeze": {"name": freeze},
        "objective": {"name": "ce"},
        "model": {"arch": "bert", "name_or_path": "prajjwal1/bert-tiny" if init == "pretrained" else None},
        "paths": {"output_dir": str(job_dir)},
    }
    if with_init_key:
        cfg["init"] = init
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))


def ok_metrics(init, freeze, fraction, seed):
    acc = expected_acc(init, freeze, fraction, seed)
    return {
        "status": "ok",
        "test/acc": acc,
        "test/f1_macro": round(acc - 0.1, 4),
        "val/loss": 0.9,
        "params/trainable": 1_200_000 if freeze == "lora" else 4_400_000,
        "params/total": 4_400_000,
        "time/fit_s": 10.0 + seed,
        "throughput/tokens_per_sec": 4000.0,
    }


def make_sweep(root: Path, *, with_failure=True):
    """16 ok jobs (2 inits x 2 freezes x 2 fractions x 2 seeds), optionally + 1 failed + 1 missing."""
    combos = list(itertools.product(INITS, FREEZES, FRACTIONS, SEEDS))
    for num, (init, freeze, fraction, seed) in enumerate(combos):
        make_job(
            root / str(num),
            init=init,
            freeze=freeze,
            fraction=fraction,
            seed=seed,
            metrics=ok_metrics(init, freeze, fraction, seed),
            with_init_key=(num % 2 == 0),
        )
    if with_failure:
        make_job(
            root / "16",
            init="scratch",
            freeze="none",
            fraction=0.1,
            seed=2,
            metrics={"status": "failed", "error": "ValueError: lr must be positive", "val/loss": 3.0},
        )
        make_job(root / "17", init="pretrained", freeze="lora", fraction=1.0, seed=2)  # no metrics.json
    return root


def read_csv(path: Path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def table_rows(md: str):
    """Parse the first Markdown table into a list of dicts."""
    start = md.index("\n|") + 1
    lines = md[start:].split("\n\n")[0].splitlines()
    split = lambda ln: [c.strip() for c in ln.strip("|").split(" | ")]  # noqa: E731
    header = split(lines[0])
    return [dict(zip(header, split(ln))) for ln in lines[2:]]


def test_full_sweep_with_failure_and_missing(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    for name in ("report.md", "results.csv", "learning_curves.png"):
        assert str(out / name) in printed

    # results.csv: one row per job, not aggregated
    rows = read_csv(out / "results.csv")
    assert len(rows) == 18
    by_dir = {r["job_dir"]: r for r in rows}
    assert by_dir["16"]["status"] == "failed"
    assert by_dir["16"]["error"] == "ValueError: lr must be positive"
    assert by_dir["16"]["val/loss"] == "3.0"
    assert by_dir["17"]["status"] == "missing"
    assert by_dir["1"]["init"] == "pretrained"  # derived from model.name_or_path (no init key)
    assert by_dir["9"]["init"] == "scratch"  # derived: name_or_path is null
    assert float(by_dir["0"]["test/acc"]) == pytest.approx(0.70)  # pretrained/lora/0.1/seed 0
    assert {
        "job_dir",
        "status",
        "error",
        "init",
        "freeze.name",
        "data.train_fraction",
        "seed",
        "test/acc",
        "test/f1_macro",
        "params/trainable",
        "time/fit_s",
    } <= set(rows[0])
    # constant keys and path-ish keys are not "varying" columns
    for key in ("objective.name", "task_name", "model.arch", "paths.output_dir", "data.cache_dir"):
        assert key not in rows[0]

    # report.md: aggregated table, sorted by (init, freeze, fraction)
    md = (out / "report.md").read_text()
    assert str(sweep) in md
    table = table_rows(md)
    assert len(table) == 8
    keys = [(r["init"], r["freeze.name"], float(r["data.train_fraction"])) for r in table]
    assert keys == sorted(itertools.product(INITS, FREEZES, FRACTIONS))
    for r in table:
        init, freeze, frac = r["init"], r["freeze.name"], float(r["data.train_fraction"])
        mean = (expected_acc(init, freeze, frac, 0) + expected_acc(init, freeze, frac, 1)) / 2
        assert r["test/acc"] == f"{mean:.4f} ± 0.0707"
        assert r["test/f1_macro"] == f"{mean - 0.1:.4f} ± 0.0707"
        assert r["val/loss"] == "0.9000 ± 0.0000"
        assert r["n"] == "2"
        assert r["trainable params"] == ("1.2M" if freeze == "lora" else "4.4M")
        assert r["fit time (s)"] == "10.5"
    first = table[0]  # pretrained / lora / 0.1: seeds give 0.70 and 0.80
    assert first["test/acc"] == "0.7500 ± 0.0707"
    failed_row = next(
        r for r in table if (r["init"], r["freeze.name"], r["data.train_fraction"]) == ("scratch", "none", "0.1")
    )
    assert (failed_row["failed"], failed_row["missing"]) == ("1", "0")
    missing_row = next(
        r for r in table if (r["init"], r["freeze.name"], r["data.train_fraction"]) == ("pretrained", "lora", "1.0")
    )
    assert (missing_row["n"], missing_row["missing"]) == ("2", "1")

    failed_section = md.split("## Failed jobs")[1].split("## Missing")[0]
    assert "`16`: ValueError: lr must be positive" in failed_section
    assert "`17`" in md.split("## Missing")[1]

    # learning_curves.png is a real PNG
    png = out / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 0
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.shape[2] in (3, 4)


def test_all_ok_exit_zero_and_default_out(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", with_failure=False)
    assert main([str(sweep)]) == 0
    for name in ("report.md", "results.csv", "learning_curves.png"):
        assert (sweep / name).is_file()
    md = (sweep / "report.md").read_text()
    assert "## Failed jobs\n\nNone." in md and "## Missing\n\nNone." in md


def test_empty_dir_exit_two(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty") in err and ".hydra/config.yaml" in err
    assert not (tmp_path / "empty" / "report.md").exists()


def test_partial_sweep_single_seed_and_extra_varying_key(tmp_path, capsys):
    """A single run dir (the DIR itself is the job) plus a second dir; objective varies -> column."""
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    make_job(
        run_a,
        init="pretrained",
        freeze="bitfit",
        fraction=0.5,
        seed=0,
        metrics={"status": "ok", "test/acc": 0.7123, "test/perplexity": 12.5},
    )
    make_job(run_b, init="pretrained", freeze="bitfit", fraction=0.5, seed=0, metrics={"status": "ok", "test/acc": 0.6})
    cfg_b = yaml.safe_load((run_b / ".hydra" / "config.yaml").read_text())
    cfg_b["objective"]["name"] = "mlm"
    (run_b / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg_b))
    out = tmp_path / "out"
    assert main([str(run_a), str(run_b), "--out", str(out)]) == 0
    table = table_rows((out / "report.md").read_text())
    assert [r["objective.name"] for r in table] == ["ce", "mlm"]
    assert table[0]["test/acc"] == "0.7123 ± –"
    assert table[0]["test/perplexity"] == "12.5000 ± –"
    assert table[1]["test/perplexity"] == "–"
    assert (out / "learning_curves.png").is_file()  # a single fraction still plots points

    # metric with no data at all: no PNG, a note instead
    out2 = tmp_path / "out2"
    assert main([str(run_a), "--out", str(out2), "--metric", "test/bleu"]) == 0
    assert not (out2 / "learning_curves.png").exists()
    assert "no data for metric 'test/bleu'" in capsys.readouterr().out
    assert (out2 / "report.md").is_file() and (out2 / "results.csv").is_file()


def test_claims_are_computed_from_seed_paired_differences(tmp_path):
    """pre-trained vs scratch (fine-tuned and probed) and vs the TF-IDF arm, per fraction; constant columns dropped."""
    sweep = tmp_path / "sweep"
    acc = {  # (init, freeze, fraction) -> per-seed test/acc
        ("pretrained", "none", 0.01): [0.60, 0.64, 0.62],
        ("scratch", "none", 0.01): [0.40, 0.46, 0.40],
        ("pretrained", "none", 1.0): [0.80, 0.82, 0.81],
        ("scratch", "none", 1.0): [0.78, 0.80, 0.82],
        ("pretrained", "backbone", 0.01): [0.50, 0.50, 0.52],
        ("scratch", "backbone", 0.01): [0.20, 0.21, 0.19],
        ("pretrained", "backbone", 1.0): [0.55, 0.56, 0.57],
        ("scratch", "backbone", 1.0): [0.25, 0.24, 0.26],
        ("tfidf", "none", 0.01): [0.50, 0.50, 0.50],
        ("tfidf", "none", 1.0): [0.88, 0.88, 0.88],
    }
    for n, ((init, freeze, fraction), values) in enumerate(acc.items()):
        for seed, value in enumerate(values):
            make_job(
                sweep / f"{n}_{seed}",
                init=init,
                freeze=freeze,
                fraction=fraction,
                seed=seed,
                metrics={"status": "ok", "test/acc": value},
            )
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    claims = md.split("## Claims")[1].split("## Failed jobs")[0]
    rows = table_rows(claims)
    assert [r["fraction"] for r in rows] == ["0.01", "1"]
    low, high = rows
    assert low["pre-trained − scratch, fine-tuned"] == "+20.0 ± 2.0 pts, clear (> 2 std) (n=3)"
    assert high["pre-trained − scratch, fine-tuned"] == "+1.0 ± 1.7 pts, within 2 std (n=3)"
    assert (
        low["probe: pre-trained − random features"].startswith("+30.7 ± ")
        and "clear" in low["probe: pre-trained − random features"]
    )
    assert high["pre-trained fine-tuned − TF-IDF"] == "-7.0 ± 1.0 pts, clearly worse (< −2 std) (n=3)"
    assert "adds +20.0 pts at fraction 0.01 and +1.0 pts at 1: it helps most where labels are scarcest." in claims
    assert "`objective.name=ce`" not in md  # only core keys are listed as constant, e.g. when init never varies
    assert table_rows(md)[0].keys() >= {"init", "freeze.name", "data.train_fraction"}


def test_one_seed_cannot_call_a_margin_clear_and_constant_columns_are_dropped(tmp_path):
    sweep = tmp_path / "sweep"
    for n, init in enumerate(("pretrained", "scratch")):
        make_job(
            sweep / str(n),
            init=init,
            freeze="none",
            fraction=0.1,
            seed=0,
            metrics={"status": "ok", "test/acc": 0.7 if init == "pretrained" else 0.5},
        )
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "The same in every job: `freeze.name=none`, `data.train_fraction=0.1`." in md
    assert list(table_rows(md)[0])[:2] == ["init", "n"]
    assert "+20.0 pts, one seed: cannot tell (n=1)" in md


def test_a_single_run_gets_its_curves(tmp_path):
    """transferlab-report RUN_DIR on one run: loss, scores and learning rate vs step, read from its CSV log."""
    from transferlab.report.curves import read_log
    from transferlab.report.study import main

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("task_name: t\n")
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text(
        "epoch,lr-AdamW,step,train/loss,val/acc,val/loss,val/perplexity\n"
        ",0.001,9,,,,\n0,,9,2.5,,,\n0,,19,,0.4,2.0,7.4\n,0.0005,19,,,,\n1,,29,1.5,,,\n1,,39,,0.6,1.6,4.9\n"
    )
    assert main([str(run)]) == 0
    png = (run / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    series = read_log(run)
    assert series["val/acc"] == [(19, 0.4), (39, 0.6)] and series["train/loss"] == [(9, 2.5), (29, 1.5)]
    assert series["lr-AdamW"] == [(9, 0.001), (19, 0.0005)]


def test_the_curves_axes_are_drawn_from_the_logged_keys():
    """What curves.png shows: the loss axis (train and validation), the learning rate on a twin axis, and a validation
    panel with the scores (perplexity repeats the loss and is left out)."""
    import matplotlib.pyplot as plt

    from transferlab.report.curves import draw

    series = {
        "train/loss": [(29, 1.5), (9, 2.5)],
        "val/loss": [(19, 2.0), (39, 1.6)],
        "val/acc": [(19, 0.4), (39, 0.6)],
        "val/perplexity": [(19, 7.4), (39, 4.9)],
        "lr-AdamW": [(9, 0.001), (19, 0.0005)],
    }
    fig = draw(series, "run-1")
    loss, panel, lr = fig.axes
    assert (loss.get_xlabel(), loss.get_ylabel(), lr.get_ylabel()) == ("optimizer step", "loss", "learning rate")
    drawn = {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for ax in fig.axes for line in ax.get_lines()
    }
    assert drawn == {
        "train/loss": ([9, 29], [2.5, 1.5]),
        "val/loss": ([19, 39], [2.0, 1.6]),
        "learning rate": ([9, 19], [0.001, 0.0005]),
        "val/acc": ([19, 39], [0.4, 0.6]),
    }
    assert [line.get_label() for line in loss.get_lines()] == ["train/loss", "val/loss"]
    assert panel.get_title() == "validation" and panel.get_xlabel() == "optimizer step"
    assert fig.texts[0].get_text() == "run-1"  # the suptitle names the run
    plt.close(fig)

    fig = draw({"train/loss": [(1, 3.0)]}, "no-scores")  # nothing validated yet: one panel, no twin axis
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss"]
    plt.close(fig)
