"""OmegaConf resolvers: unique run ids, project paths, ${run:TASK} for chaining runs, a checkpoint's default LR."""

import json
import uuid
from pathlib import Path

from omegaconf import OmegaConf

from transferlab.errors import TransferlabError


def latest_run_export(task_name: str, output_dir: str) -> str:
    """The export/ dir of the newest successful run of `task_name` (run dirs sort by their time stamp)."""
    runs_dir = Path(output_dir) / task_name / "runs"
    for run in sorted(runs_dir.glob("*"), reverse=True):
        metrics, export = run / "metrics.json", run / "export"
        try:
            ok = json.loads(metrics.read_text()).get("status") == "ok"
        except (OSError, ValueError):
            ok = False
        if ok and export.is_dir():
            return str(export.resolve())
    raise TransferlabError(
        f"${{run:{task_name}}} found no successful run with an export under {runs_dir}; "
        f"run `transferlab-train experiment={task_name}` first, or set model.name_or_path=PATH"
    )


def _run(task_name: str, *, _root_) -> str:
    return latest_run_export(task_name, _root_.paths.output_dir)


def _hydra_subdir() -> str | None:
    """.hydra on rank 0; none on other ranks started together with it (SLURM, torchrun), which write into the same
    run dir. (Lightning's own launcher passes hydra.output_subdir=null to the ranks it starts.)"""
    from transferlab.config import first_process

    return ".hydra" if first_process() else None


def _column(key: str, *, _root_):
    """data=files/hub's default for a column key (text_column, label_column): the objective's (objectives/base.py)."""
    from transferlab.objectives import OBJECTIVES
    from transferlab.objectives.base import Objective

    objective = OBJECTIVES.get(_root_.objective.name, Objective)
    return objective.columns.get(key, Objective.columns.get(key))


def register_resolvers() -> None:
    from transferlab.config import DATA_DIR, project_root
    from transferlab.config.checkpoint_lr import checkpoint_lr

    resolvers = {
        "tl_uid": lambda: uuid.uuid4().hex[:6],
        "tl_root": project_root,
        "tl_data_dir": lambda: str(DATA_DIR),
        "run": _run,
        "tl_hydra_subdir": _hydra_subdir,
        "tl_column": _column,
        "tl_checkpoint_lr": checkpoint_lr,
    }
    for name, fn in resolvers.items():
        # Cached so the run dir's id is drawn once per config (and copied to every job of a sweep).
        OmegaConf.register_new_resolver(name, fn, use_cache=name not in ("run", "tl_column"), replace=True)
