"""`transferlab-baseline`: TF-IDF + logistic regression on a labeled config's splits, as a run dir like any other.

It loads the data exactly as `transferlab-train` would for the same overrides (same splits, train_fraction, seed and
limits), fits scikit-learn's TfidfVectorizer (word 1-2-grams, sublinear tf) and LogisticRegression with C picked on
the validation split (never on test), and writes metrics.json with the classification keys (val/acc, val/f1_macro,
test/acc, test/f1_macro), params/*, time/fit_s and status. A report over a sweep shows it as the init=tfidf row.
"""

import sys
import time

import hydra
from omegaconf import DictConfig

from transferlab.cli.front import report, run_cli
from transferlab.config import CONF_DIR, setup
from transferlab.errors import TransferlabError

setup()

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)  # inverse regularisation strengths tried; the best on validation is kept


def fit_and_score(splits: dict, seed: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    texts = {split: [str(t) for t in ds["text"][:]] for split, ds in splits.items()}
    labels = {split: [str(y) for y in ds["label"][:]] for split, ds in splits.items()}
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
    features = {"train": vectorizer.fit_transform(texts["train"])}
    features.update({split: vectorizer.transform(texts[split]) for split in ("validation", "test")})
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features["train"], labels["train"])
        acc = accuracy_score(labels["validation"], model.predict(features["validation"]))
        if best is None or acc > best[0]:
            best = (acc, c, model)
    _, c, model = best
    metrics = {"time/fit_s": round(time.perf_counter() - start, 3), "baseline/C": c}
    for split, stage in (("validation", "val"), ("test", "test")):
        predicted = model.predict(features[split])
        metrics[f"{stage}/acc"] = accuracy_score(labels[split], predicted)
        metrics[f"{stage}/f1_macro"] = f1_score(labels[split], predicted, average="macro")
    params = int(model.coef_.size + model.intercept_.size)
    metrics.update({"params/trainable": params, "params/total": params})
    return metrics


def run_baseline(cfg: DictConfig) -> float | None:
    from transferlab.run.job import hydra_context
    from transferlab.run.outputs import write_metrics
    from transferlab.run.preflight import check_inputs
    from transferlab.run.rundir import record_failure

    run_dir, multirun, _ = hydra_context()
    try:
        if "label" not in _objective_fields(cfg):
            raise TransferlabError(
                f"the TF-IDF baseline classifies: objective={cfg.objective.name} has no label column"
            )
        if cfg.data.sources:
            raise TransferlabError(
                "the TF-IDF baseline fits one data set, and data=mix draws its sources by weight; "
                "run the baseline on each source's data config"
            )
        inputs = check_inputs(cfg, run_dir)
        metrics = {**fit_and_score(inputs.raw, cfg.seed), "status": "ok"}
        metrics.update({f"data/dropped_{split}": n for split, n in inputs.dropped.items()})
        write_metrics(run_dir, metrics)
        print(
            f"test acc {metrics['test/acc']:.4f}  macro-F1 {metrics['test/f1_macro']:.4f}  "
            f"(C={metrics['baseline/C']})  run dir {run_dir}"
        )
        return float(metrics["val/acc"])
    except Exception as e:
        record_failure(run_dir, e)
        report(e, bool(cfg.verbose))
        if multirun:
            return None
        sys.exit(1)


def _objective_fields(cfg) -> dict:
    from transferlab.objectives import OBJECTIVES

    return OBJECTIVES[cfg.objective.name].fields


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="baseline")
def hydra_main(cfg: DictConfig):
    return run_baseline(cfg)


def main() -> None:
    run_cli(hydra_main, config_name="baseline")


if __name__ == "__main__":
    main()
