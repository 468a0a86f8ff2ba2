"""The report's "When to use each" (labels saved, crossovers, compute paid back) on synthetic curves with known
answers, and its refusal to compare runs that did not see the same data (data fingerprints)."""

import json

import pytest
from test_report import make_job

from transferlab.report.interpolate import crossings, labels_to_reach, tasks_to_repay, value_at
from transferlab.report.study import main

FRACTIONS = {0.01: 100, 0.1: 1000, 1.0: 10000}  # fraction -> data/train_examples
ACC = {  # (init, freeze) -> per seed, test/acc at 100, 1,000, 10,000 labels
    ("scratch", "none"): [(0.50, 0.70, 0.80), (0.52, 0.72, 0.82)],
    ("pretrained", "none"): [(0.60, 0.90, 0.78), (0.65, 0.90, 0.818)],
    ("pretrained", "backbone"): [(0.30, 0.30, 0.30), (0.30, 0.31, 0.30)],
    ("tfidf", "none"): [(0.55, 0.75, 0.95), (0.55, 0.75, 0.95)],
}
TIMES = {100: 10.0, 1000: 20.0, 10000: 30.0}  # time/fit_s: linear in log labels


def sweep(root, acc=ACC, fingerprints=None, jitter=0.0):
    for n, ((init, freeze), seeds) in enumerate(acc.items()):
        for seed, values in enumerate(seeds):
            for (fraction, labels), value in zip(FRACTIONS.items(), values):
                metrics = {
                    "status": "ok",
                    "test/acc": value,
                    "data/train_examples": labels,
                    "time/fit_s": TIMES[labels] + (jitter if seed else -jitter),
                }
                make_job(
                    root / f"{n}_{seed}_{labels}",
                    init=init,
                    freeze=freeze,
                    fraction=fraction,
                    seed=seed,
                    metrics={**metrics, **(fingerprints or {})},
                )
    return root


def when_to_use(out):
    md = (out / "report.md").read_text()
    return md.split("### When to use each")[1].split("## Failed jobs")[0]


def test_labels_to_reach_interpolates_on_log_labels_and_never_extrapolates():
    curve = [(100, 0.5), (1000, 0.7), (10000, 0.8)]
    kind, labels = labels_to_reach(curve, 0.6)  # halfway in the metric between 100 and 1,000: 10^2.5 on log labels
    assert kind == "reached" and labels / 100 == pytest.approx(10**0.5)
    assert labels_to_reach(curve, 0.9) == ("never", 10000)  # beyond the last point: not extrapolated
    assert labels_to_reach(curve, 0.45) == ("at most", 100)  # already there at the fewest labels measured
    assert labels_to_reach([(100, 0.5), (1000, 0.4), (10000, 0.8)], 0.6)[1] == pytest.approx(10 ** (3 + 0.5))
    assert value_at([(100, 10.0), (10000, 30.0)], 1000) == pytest.approx(20.0)
    assert value_at([(100, 10.0), (10000, 30.0)], 20000) is None


def test_crossings_at_a_known_label_count_and_none_in_range():
    assert crossings([(100, -0.1), (1000, 0.1), (10000, 0.2)]) == [(pytest.approx(10**2.5), True, 0)]
    assert crossings([(100, 0.3), (1000, 0.1), (10000, -0.3)]) == [(pytest.approx(10 ** (3 + 0.25)), False, 1)]
    assert crossings([(100, 0.1), (1000, 0.2), (10000, 0.05)]) == []


def test_tasks_to_repay_the_pre_training():
    assert tasks_to_repay(100.0, 15.75, 10.0) == 18  # 100 s / 5.75 s saved per task = 17.4: 18 tasks
    assert tasks_to_repay(100.0, 20.0, 10.0) == 10
    assert tasks_to_repay(100.0, 10.0, 10.0) is None and tasks_to_repay(100.0, 9.0, 10.0) is None  # never


def test_labels_saved_per_seed_with_clear_and_within_noise_sentences(tmp_path):
    out = tmp_path / "out"
    assert main([str(sweep(tmp_path / "sweep")), "--out", str(out)]) == 0
    text = when_to_use(out)
    rows = [line for line in text.splitlines() if line.startswith("| 0") or line.startswith("| 1 ")]
    # seed 0 needs 10^2.5 labels (3.162x), seed 1 10^2.65 (4.467x): 3.81 ± 0.92
    assert rows[0] == "| 0.01 | 100 labels | 0.6250 | 3.8× ± 0.9 (n=2) |"
    assert rows[1] == "| 0.1 | 1,000 labels | 0.9000 | more than all labels (> 10.0×; 2 of 2 seeds never reach it) |"
    # seed 0: 10^3.8 / 10^4 = 0.631x, seed 1: 10^3.98 / 10^4 = 0.955x
    assert rows[2] == "| 1 | 10,000 labels | 0.7990 | 0.8× ± 0.2 (n=2) |"
    needed = (10**2.5 + 10**2.65) / 2
    assert (
        f"- With 100 labels, pre-trained fine-tuning scores 0.6250; scratch needs about {needed:,.0f} labels to match "
        "it (3.8×): pre-training is worth 3.8× the labels.\n" in text
    )  # +11.5 ± 2.1 pts: clear, so no caveat
    assert (
        "- With 1,000 labels, pre-trained fine-tuning scores 0.9000; scratch does not reach it within the measured "
        "range (up to 10,000 labels) in 2 of 2 seeds: pre-training is worth more than all the labels measured.\n"
    ) in text
    needed = (10**3.8 + 10**3.98) / 2
    assert (
        f"- With 10,000 labels, pre-trained fine-tuning scores 0.7990; scratch needs about {needed:,.0f} labels to "
        "match it (0.8×): pre-training saves no labels. Within noise: the seeds do not separate pre-trained from "
        "scratch fine-tuning here (-1.1 ± 1.3 pts).\n"
    ) in text
    assert "Labels are the train examples a run used (data/train_examples)." in text


def test_crossovers_inside_and_outside_the_measured_range(tmp_path):
    out = tmp_path / "out"
    assert main([str(sweep(tmp_path / "sweep")), "--out", str(out)]) == 0
    text = when_to_use(out)
    assert (
        "- Fine-tuning vs the probe: not inside the measured range (fine-tuning leads at every count measured, "
        "100 labels to 10,000 labels; clear at 3 of 3).\n"
    ) in text
    # scratch - pre-trained: -0.19 at 1,000, +0.011 (within noise) at 10,000
    at = 10 ** (3 + 0.19 / 0.201)
    assert (
        f"- Scratch fine-tuning vs pre-trained fine-tuning: scratch fine-tuning overtakes pre-trained fine-tuning at "
        f"≈{at:,.0f} labels (between 1,000 labels and 10,000 labels; within noise at 10,000 labels).\n"
    ) in text
    at = 10 ** (3 + 0.15 / 0.301)  # pre-trained - TF-IDF: +0.15 at 1,000, -0.151 at 10,000
    assert (
        f"- Pre-trained fine-tuning vs TF-IDF: TF-IDF overtakes pre-trained fine-tuning at ≈{at:,.0f} labels "
        "(between 1,000 labels and 10,000 labels).\n"
    ) in text


def test_compute_paid_back_from_the_pretrain_run_beside_the_sweep(tmp_path):
    study = tmp_path / "study"
    sweep(study / "sweep")
    out = tmp_path / "no-pretrain"
    assert main([str(study / "sweep"), "--out", str(out)]) == 0
    assert (
        when_to_use(out)
        .rstrip()
        .endswith(
            "**Compute paid back:** not computed: no pre-training run beside the sweep (pretrain/metrics.json; a study "
            "from --source has none)."
        )
    )
    (study / "pretrain").mkdir()
    pretrain = {"status": "ok", "time/fit_s": 100.0, "params/total": 1000, "throughput/tokens_per_sec": 50.0}
    (study / "pretrain" / "metrics.json").write_text(json.dumps(pretrain))
    assert main([str(study / "sweep"), "--out", str(study)]) == 0
    text = when_to_use(study)
    assert (
        "**Compute paid back:** pre-training took 100 s of fit, ≈ 3e+07 FLOPs (6 × 1,000 parameters × 5e+03 tokens)."
        in text
    )
    # the labels-saved figure, per seed: scratch reaches 0.625 at 10^2.5 and 10^2.65 labels, 381 on average, where
    # its mean fit takes 10 + 10 * log10(3.81) = 15.8 s
    needed = (10**2.5 + 10**2.65) / 2
    assert f"scratch needs about {needed:,.0f} labels to match it (3.8×)" in text  # the same number in both
    assert (
        f"- With 100 labels: scratch needs ≈{needed:,.0f} labels and ≈15.8 s of fine-tuning, pre-trained "
        "fine-tuning 10.0 s; 5.8 s saved per task: 18 such fine-tuning tasks repay the pre-training.\n"
    ) in text
    assert "- With 1,000 labels: scratch does not reach 0.9000 within the measured range" in text


def test_a_time_saved_within_the_seeds_spread_of_fit_times_repays_nothing(tmp_path):
    study = tmp_path / "study"
    sweep(study / "sweep", jitter=3.0)  # each arm's two seeds fit 6 s apart: 2 std = 8.5 s, above the 5.8 s saved
    (study / "pretrain").mkdir()
    (study / "pretrain" / "metrics.json").write_text(json.dumps({"status": "ok", "time/fit_s": 100.0}))
    assert main([str(study / "sweep"), "--out", str(study)]) == 0
    assert (
        f"- With 100 labels: scratch needs ≈{(10**2.5 + 10**2.65) / 2:,.0f} labels and ≈15.8 s of fine-tuning, "
        "pre-trained fine-tuning 10.0 s; no fine-tuning time is saved beyond the seeds' spread of fit times "
        "(2 std: 8.5 s): it pays back in labels, never in compute.\n"
    ) in when_to_use(study)


def test_seeds_that_disagree_on_reaching_the_score_are_reported_as_such(tmp_path):
    acc = {**ACC, ("scratch", "none"): [(0.50, 0.70, 0.80), (0.52, 0.72, 0.95)]}  # seed 1 reaches 0.9 at 10^3.78
    out = tmp_path / "out"
    assert main([str(sweep(tmp_path / "sweep", acc=acc)), "--out", str(out)]) == 0
    text = when_to_use(out)
    got = 10 ** (3 + 0.18 / 0.23) / 1000
    assert f"| 0.1 | 1,000 labels | 0.9000 | {got:.1f}× in 1 of 2 seeds; 1 never reaches it (> 10.0×) |" in text
    assert (
        f"- With 1,000 labels, pre-trained fine-tuning scores 0.9000; scratch needs about {got:.1f}× the labels in 1 "
        "of 2 seeds and does not reach it within the measured range (up to 10,000 labels) in 1: the seeds disagree on "
        "what pre-training is worth here."
    ) in text
    (tmp_path / "pretrain").mkdir()  # beside the sweep: compute paid back reads the same per-seed figures
    (tmp_path / "pretrain" / "metrics.json").write_text(json.dumps({"status": "ok", "time/fit_s": 100.0}))
    assert main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    assert (
        "- With 1,000 labels: the seeds disagree (1 of 2 seeds reach it, 1 of 2 seeds never reach it within the "
        "measured range): no fine-tuning time to compare."
    ) in when_to_use(out)


def test_runs_that_saw_different_data_are_refused_unless_allowed(tmp_path, capsys):
    same = {"data/fingerprint_train_pool": "aaaa", "data/fingerprint_validation": "bbbb"}
    sweep(tmp_path / "sweep", fingerprints={**same, "data/fingerprint_test": "cccc"})
    make_job(
        tmp_path / "other",
        init="tfidf",
        freeze="none",
        fraction=0.5,
        seed=0,
        metrics={"status": "ok", "test/acc": 0.5, **same, "data/fingerprint_test": "dddd"},
    )
    out = tmp_path / "out"
    assert main([str(tmp_path / "sweep"), str(tmp_path / "other"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: runs other and sweep/0_0_100 did not see the same data (test fingerprints dddd vs cccc); report runs "
        "of one task, or pass --allow-mixed-data"
    ]
    assert not out.exists()  # refused before writing anything
    assert main([str(tmp_path / "sweep"), str(tmp_path / "other"), "--out", str(out), "--allow-mixed-data"]) == 0
    assert "note: runs other and sweep/0_0_100 did not see the same data" in capsys.readouterr().out
    assert (out / "report.md").is_file()
    # the same task at another train fraction (another label count) is no conflict; nor is a run that records none
    make_job(
        tmp_path / "more",
        init="tfidf",
        freeze="none",
        fraction=0.5,
        seed=1,
        metrics={"status": "ok", "test/acc": 0.5, **same, "data/fingerprint_test": "cccc"},
    )
    make_job(
        tmp_path / "old", init="tfidf", freeze="none", fraction=0.5, seed=2, metrics={"status": "ok", "test/acc": 0.5}
    )
    dirs = [str(tmp_path / d) for d in ("sweep", "more", "old")]
    assert main([*dirs, "--out", str(tmp_path / "out2")]) == 0


def test_a_train_run_and_the_baseline_record_the_same_fingerprints_for_the_same_rows(tmp_path):
    """The train pool, validation and test rows as read, whatever the fraction, file path or column names; the train
    examples used as the label count."""
    from transferlab.cli.front import compose
    from transferlab.run.preflight import check_inputs

    rows = [f"{w} thing number {i},{lab}" for i in range(50) for w, lab in [("great", "pos"), ("awful", "neg")]]
    (tmp_path / "a.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "b.csv").write_text("sentence,label\n" + "\n".join(rows) + "\n")

    def record(config, path, *more):
        cfg = compose(["data=files", f"data.train={path}", "data.label_column=label", *more], config)
        return check_inputs(cfg, tmp_path / "run").data_record()

    train = record("train", tmp_path / "a.csv", "data.train_fraction=0.5")
    baseline = record("baseline", tmp_path / "copy" / "b.csv", "data.text_column=sentence", "data.train_fraction=0.25")
    assert train["data/train_examples"] == 40 and baseline["data/train_examples"] == 20  # 80 rows left after carving
    fingerprints = [k for k in train if k.startswith("data/fingerprint_")]
    assert sorted(fingerprints) == [
        "data/fingerprint_test",
        "data/fingerprint_train_pool",
        "data/fingerprint_validation",
    ]
    assert {k: train[k] for k in fingerprints} == {k: baseline[k] for k in fingerprints}
    (tmp_path / "c.csv").write_text("text,label\n" + "\n".join(rows[:-1] + ["awful thing number 49,pos"]) + "\n")
    changed = record("train", tmp_path / "c.csv")
    assert [k for k in fingerprints if changed[k] != train[k]]  # one label changed: another task


def test_one_label_count_measured_gives_no_curve_to_read(tmp_path):
    """multirun.sh --fast caps every fraction at data.max_train_samples=300: one count, nothing to interpolate."""
    for n, (init, fraction) in enumerate([(i, f) for i in ("scratch", "pretrained") for f in (0.1, 1.0)]):
        metrics = {"status": "ok", "test/acc": 0.5 + n / 10, "data/train_examples": 300}
        make_job(tmp_path / "sweep" / str(n), init=init, freeze="none", fraction=fraction, seed=0, metrics=metrics)
    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")]) == 0
    assert when_to_use(tmp_path / "out").strip() == (
        "One label count measured (300 labels; e.g. data.max_train_samples caps every fraction): there is no curve "
        "to read."
    )
