"""MLflow (logger=mlflow): each run is one MLflow run with the flattened config as params (`optimizer.lr`), the
metrics as logged (`val/loss`: MLflow allows '/'), and at the end metrics.json's numbers plus metrics.json,
curves.png and the model card (export/README.md) as artifacts; its status says ok, failed or interrupted.

The store is local unless configured (config/optional.py tracking_uri): SQLite at <outputs>/mlflow.db, artifacts in
mlartifacts/ beside it. A sweep is one parent run with its jobs nested under it (tag mlflow.parentRunId), found or
made under a lock in the sweep dir, so jobs in parallel processes (joblib, submitit) share it. Imported only when
logger=mlflow is set.
"""

import fcntl
import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from transferlab.config.optional import tracking_uri
from transferlab.errors import TransferlabError

RUN_TAG, SWEEP_TAG = "transferlab.run_dir", "transferlab.sweep_dir"
ARTIFACTS = ("metrics.json", "curves.png", "export/README.md")
_STATUS = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_active: dict = {}  # run dir -> its logger, until end_run


class TransferlabMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger on a run made here, with dotted param names; the job, not Lightning's end of fit,
    ends the run (a run still testing is not FINISHED)."""

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        flat = _flatten_dict(_convert_params(params), delimiter=".")
        # MLflow params never change: a resumed run keeps the values its first launch logged
        logged = self.experiment.get_run(self.run_id).data.params
        new = [Param(k, str(v)[:MAX_PARAM_VAL_LENGTH]) for k, v in flat.items() if k not in logged]
        for i in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
            self.experiment.log_batch(run_id=self.run_id, params=new[i : i + MAX_PARAMS_TAGS_PER_BATCH])

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        pass


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _experiment_id(client, name: str, uri: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # another job made it meanwhile
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise TransferlabError(
            f"logger.mlflow: experiment '{name}' is deleted in {uri}; restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}) or set logger.mlflow.experiment=NAME"
        )
    return found.experiment_id


def _tagged(client, experiment_id: str, tag: str, value: str) -> str | None:
    """The id of the run with this tag value, if any."""
    if "'" in value:  # not expressible in a filter string; such a dir gets a fresh run
        return None
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1)
    return runs[0].info.run_id if runs else None


@contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _client(cfg):
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."
    uri = tracking_uri(cfg)
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(uri), uri


def _experiment(client, cfg, uri: str) -> str:
    m = cfg.logger.mlflow
    location = m.artifact_location
    db = _sqlite_path(uri)
    if location is None and db is not None:
        location = (db.parent / "mlartifacts").resolve().as_uri()
    return _experiment_id(client, m.experiment or cfg.task_name, uri, location)


def _sweep_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().sweep.dir).resolve()


def build_mlflow_logger(cfg, run_dir: Path, group: str | None, resuming: bool) -> TransferlabMLFlowLogger:
    from transferlab.run.loggers import run_tags

    client, uri = _client(cfg)
    run_dir = run_dir.resolve()
    tags = {**run_tags(cfg), RUN_TAG: str(run_dir)}
    if group:
        sweep_dir = _sweep_dir()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with _locked(sweep_dir / ".mlflow.lock"):
            experiment_id = _experiment(client, cfg, uri)
            parent = _tagged(client, experiment_id, SWEEP_TAG, str(sweep_dir))
            if parent is None:
                parent_tags = {SWEEP_TAG: str(sweep_dir)}
                parent = client.create_run(experiment_id, run_name=f"{cfg.task_name}/{group}", tags=parent_tags)
                parent = parent.info.run_id
        tags["mlflow.parentRunId"] = parent
        name = f"{cfg.task_name}/{group}/{run_dir.name}"
    else:
        experiment_id = _experiment(client, cfg, uri)
        name = f"{cfg.task_name}/{run_dir.name}"
    run_id = _tagged(client, experiment_id, RUN_TAG, str(run_dir)) if resuming else None  # the same run continues
    if run_id is None:
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    logger = TransferlabMLFlowLogger(
        experiment_name=cfg.logger.mlflow.experiment or cfg.task_name, tracking_uri=uri, run_id=run_id
    )
    _active[run_dir] = logger
    return logger


def end_run(run_dir: Path) -> None:
    """metrics.json's numbers and the run's files into the MLflow run, which ends as the run did."""
    logger = _active.pop(run_dir.resolve(), None)
    if logger is None:
        return
    from mlflow.entities import Metric
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH

    try:
        client, run_id = logger.experiment, logger.run_id
        path = run_dir / "metrics.json"
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        have = client.get_run(run_id).data.metrics
        now = int(time.time() * 1000)
        final = [
            Metric(k, float(v), now, 0)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in have
        ]
        for i in range(0, len(final), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=final[i : i + MAX_METRICS_PER_BATCH])
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                folder = str(Path(name).parent)
                client.log_artifact(run_id, str(run_dir / name), None if folder == "." else folder)
        client.set_terminated(run_id, _STATUS.get(metrics.get("status"), "FAILED"))
    except Exception as e:  # the run's own outcome stands; the tracker's failure is said, not raised
        print(f"warning: mlflow: could not finish run {logger.run_id}: {' '.join(str(e).split())}", file=sys.stderr)


def end_sweep(cfg, sweep_dir: Path, all_ok: bool) -> None:
    """The sweep's parent run ends FINISHED when every job did, else FAILED."""
    client, uri = _client(cfg)
    experiment = client.get_experiment_by_name(cfg.logger.mlflow.experiment or cfg.task_name)
    parent = experiment and _tagged(client, experiment.experiment_id, SWEEP_TAG, str(sweep_dir.resolve()))
    if parent:
        client.set_terminated(parent, "FINISHED" if all_ok else "FAILED")
