"""`transferlab-baseline`: the objective's classical baseline on a labeled config's splits, as a run dir like any
other.

It loads the data exactly as `transferlab-train` would for the same overrides (same splits, train_fraction, seed and
limits) and calls the objective's `baseline` (objectives/baselines.py: TF-IDF features and a linear model picked on
validation, never on test), which scores with the keys a run of that objective writes (classification: val/acc,
test/f1_macro, ...). metrics.json adds params/*, time/fit_s and status. A report over a sweep shows it as the
init=tfidf row.
"""

import sys

import hydra
from omegaconf import DictConfig

from transferlab.cli.front import report, run_cli
from transferlab.config import CONF_DIR, setup
from transferlab.errors import TransferlabError

setup()


def run_baseline(cfg: DictConfig) -> float | None:
    from transferlab.run.job import hydra_context
    from transferlab.run.outputs import write_metrics
    from transferlab.run.preflight import check_inputs
    from transferlab.run.rundir import record_failure

    run_dir, multirun, _ = hydra_context()
    try:
        if "label" not in _objective(cfg).fields:
            raise TransferlabError(
                f"the TF-IDF baseline classifies: objective={cfg.objective.name} has no label column"
            )
        if cfg.data.sources:
            raise TransferlabError(
                "the TF-IDF baseline fits one data set, and data=mix draws its sources by weight; "
                "run the baseline on each source's data config"
            )
        inputs = check_inputs(cfg, run_dir)
        metrics = {**_objective(cfg).baseline(inputs.raw, cfg.seed), "status": "ok"}
        metrics.update({f"data/dropped_{split}": n for split, n in inputs.dropped.items()})
        metrics.update(inputs.data_record())  # the same record as a transformer run on the same splits
        write_metrics(run_dir, metrics)
        scores = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("test/", "baseline/")))
        print(f"{scores}  run dir {run_dir}")
        val = [v for k, v in metrics.items() if k.startswith("val/")]
        return float(val[0])  # a sweep's score: the first validation metric (classification: val/acc)
    except Exception as e:
        record_failure(run_dir, e)
        report(e, bool(cfg.verbose))
        if multirun:
            return None
        sys.exit(1)


def _objective(cfg):
    from transferlab.objectives import OBJECTIVES

    return OBJECTIVES[cfg.objective.name]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="baseline")
def hydra_main(cfg: DictConfig):
    return run_baseline(cfg)


def main() -> None:
    run_cli(hydra_main, config_name="baseline")


if __name__ == "__main__":
    main()
