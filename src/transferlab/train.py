"""`transferlab-train`: compose model x objective x freeze x data, fit, test, export, write metrics.json."""

import sys

import hydra
from omegaconf import DictConfig

from transferlab.cli.front import run_cli
from transferlab.config import CONF_DIR, setup

setup()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig):
    from transferlab.run.job import run_job

    return run_job(cfg)


def main() -> None:
    from transferlab.run import sweep

    run_cli(hydra_main)
    if sweep.failed_jobs:  # a multirun whose jobs were recorded as failed (each has its error in metrics.json)
        sys.exit(1)


if __name__ == "__main__":
    main()
