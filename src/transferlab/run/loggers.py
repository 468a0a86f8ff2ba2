"""Loggers from cfg.logger: CSV in <run>/csv, wandb (offline by default) in <run>/wandb, TensorBoard in <run>/tb,
MLflow in a tracking store (run/tracking.py)."""

import os
from pathlib import Path


def run_tags(cfg) -> dict:
    init = cfg.init or ("pretrained" if cfg.model.name_or_path else "scratch")
    arch = cfg.model.arch or Path(str(cfg.model.name_or_path)).name
    return {"objective": cfg.objective.name, "freeze": cfg.freeze.name, "model": arch, "init": init}


def wandb_tags(cfg) -> list:
    return [*(f"{key}:{value}" for key, value in run_tags(cfg).items()), *cfg.logger.wandb.tags]


def _keep_earlier_csv(csv_dir: Path) -> None:
    """Lightning's CSVLogger deletes an existing metrics.csv; a resumed run keeps it as metrics.<n>.csv."""
    current = csv_dir / "metrics.csv"
    if current.is_file():
        n = sum(1 for _ in csv_dir.glob("metrics.*.csv"))
        current.rename(csv_dir / f"metrics.{n}.csv")


def build_loggers(cfg, run_dir: Path, group: str | None, resuming: bool = False) -> list:
    loggers = []
    lcfg = cfg.logger
    if lcfg.csv:
        from lightning.pytorch.loggers import CSVLogger

        if resuming:
            _keep_earlier_csv(run_dir / "csv")

        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    if lcfg.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tb", version=""))
    if lcfg.wandb is not None:
        from lightning.pytorch.loggers import WandbLogger

        w = lcfg.wandb
        if w.offline:
            os.environ.setdefault("WANDB_MODE", "offline")
            os.environ.setdefault("WANDB_SILENT", "true")  # the run ends with our summary, not its banner
        # The run id comes from the run dir (a sweep job: sweep name + job number), so a resumed run
        # (resume=auto) continues the same dashboard run and two sweeps never share an id.
        logger = WandbLogger(
            save_dir=str(run_dir),
            project=w.project,
            entity=w.entity,
            offline=w.offline,
            group=w.group or group,
            tags=wandb_tags(cfg),
            name=f"{cfg.task_name}/{run_dir.name}",
            id=f"{run_dir.parent.name}-{run_dir.name}" if group else run_dir.name,
            resume="allow",
            reinit="finish_previous",
        )
        # Lightning passes anonymous=None to wandb.init, and wandb warns about any value of that retired setting
        logger._wandb_init.pop("anonymous", None)
        loggers.append(logger)
    if lcfg.get("mlflow") is not None:
        from transferlab.run.tracking import build_mlflow_logger

        loggers.append(build_mlflow_logger(cfg, run_dir, group, resuming))
    return loggers
