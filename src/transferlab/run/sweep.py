"""Sweep bookkeeping in the launching process: after a multirun, list failed jobs and make the exit code say so.

Each job records its own outcome in <job>/metrics.json (status ok|failed); reading those works for every
launcher, including submitit and joblib whose jobs run in other processes.
"""

import json
from pathlib import Path

from hydra.experimental.callback import Callback

failed_jobs: list = []


def sweep_outcomes(sweep_dir: Path) -> dict:
    """job dir -> status ('ok', 'failed: <error>' or 'missing')."""
    out = {}
    for config in sorted(sweep_dir.glob("*/.hydra/config.yaml")):
        job = config.parent.parent
        try:
            metrics = json.loads((job / "metrics.json").read_text())
            out[job] = "ok" if metrics.get("status") == "ok" else f"failed: {metrics.get('error', '?')}"
        except (OSError, ValueError):
            out[job] = "missing"
    return out


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        outcomes = sweep_outcomes(sweep_dir)
        bad = {job: status for job, status in outcomes.items() if status != "ok"}
        failed_jobs.extend(bad)
        print(f"sweep: {len(outcomes) - len(bad)} of {len(outcomes)} jobs ok in {sweep_dir}")
        for job, status in bad.items():
            print(f"  {job.name}: {status}")
        if config.logger.get("mlflow") is not None:
            from transferlab.run.tracking import end_sweep

            end_sweep(config, sweep_dir, all_ok=not bad)
