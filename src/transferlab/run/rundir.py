"""Whether a launch may write into its run dir, decided before Hydra writes `.hydra/` there (cli.preflight).

A dir that holds no run (new, empty, or only a failed attempt's record and tokenizer) is used as it is. A dir that
holds a run (metrics.json with status ok, checkpoints or an export) is:
- continued by resume=auto from its checkpoints/last.ckpt (or by resume=PATH to one of its checkpoints); without a
  readable last.ckpt resume=auto stops, since starting fresh there would overwrite the run's best checkpoint, export
  and metrics;
- replaced with overwrite=true: its files are removed first, so nothing of it (its tokenizer) leaks into the new run;
- otherwise refused, in one line, with nothing written.
A finished run continued by resume=auto that then fails keeps its metrics.json and .hydra/ (record_failure).
"""

import json
import shutil
from pathlib import Path

from transferlab.errors import TransferlabError

# What a run writes into its dir (DESIGN.md's run dir): overwrite=true removes these, and nothing else of the dir.
RUN_ENTRIES = (
    ".hydra",
    "metrics.json",
    "checkpoints",
    "export",
    "predictions",
    "tokenizer",
    "csv",
    "tb",
    "wandb",
    "ranks",
    "curves.png",
    "per_class.csv",  # an objective's eval-set files (Objective.artifacts)
    "confusion_matrix.png",
    "per_label.csv",
    "eval",  # transferlab-eval's evaluations of the run's checkpoints
)

# A finished run's record (metrics.json, .hydra/*) while this process continues that run: run dir -> {path: bytes}
_kept: dict = {}


class RunDirTaken(TransferlabError):
    """The run dir holds a run that this launch may not write over; nothing was written to it."""


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def held_run(run_dir: Path) -> list:
    """What in run_dir shows that a run trained there ([] when none): a finished record, checkpoints, an export."""
    found = ["metrics.json status ok"] if _status(run_dir) == "ok" else []
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    if ckpts:
        found.append(f"checkpoints/{', '.join(ckpts[:3])}{', ...' if len(ckpts) > 3 else ''}")
    export = run_dir / "export"
    if export.is_dir() and any(export.iterdir()):
        found.append("export/")
    return found


def continues(cfg, run_dir: Path) -> bool:
    """resume=auto, or resume=PATH to a checkpoint inside this run dir: the launch goes on with the run held there."""
    if cfg.resume in ("auto", "never"):
        return cfg.resume == "auto"
    return run_dir.resolve() in Path(cfg.resume).resolve().parents


def check_continuable(run_dir: Path, where: str) -> None:
    """resume=auto in a dir holding a run needs its readable last.ckpt: without one, say what is there and stop."""
    from transferlab.run.preflight import read_checkpoint

    found = held_run(run_dir)
    if not found:
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    over = f"start it over with resume=never overwrite=true, or choose another {where.split('=')[0]}"
    if not last.is_file():
        raise RunDirTaken(
            f"resume=auto: {where} holds a run ({'; '.join(found)}) but no checkpoints/last.ckpt to continue; {over}"
        )
    try:
        read_checkpoint(str(last), f"resume=auto: {last}", (over, over))
    except TransferlabError as e:
        raise RunDirTaken(str(e)) from None


def claim(cfg, run_dir: Path, where: str) -> None:
    """May this launch write into run_dir? Raises RunDirTaken (nothing written) or returns, having removed the
    earlier run's files for overwrite=true."""
    found = held_run(run_dir)
    if not found:
        return
    shown = "; ".join(found)
    if continues(cfg, run_dir):
        if cfg.resume == "auto":
            check_continuable(run_dir, where)
        if cfg.overwrite:
            raise RunDirTaken(
                f"{where} holds a run ({shown}) that resume={cfg.resume} continues and overwrite=true "
                "would delete; drop one of the two"
            )
        if _status(run_dir) == "ok":
            _keep_record(run_dir)
        return
    if cfg.overwrite:
        for name in RUN_ENTRIES:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        return
    resume = ", resume=auto to continue it" if (run_dir / "checkpoints" / "last.ckpt").is_file() else ""
    raise RunDirTaken(
        f"{where} holds an earlier run ({shown}); choose another {where.split('=')[0]}{resume}, "
        "or overwrite=true to replace it"
    )


def claim_run_dirs(cfg, multirun: bool) -> None:
    """The launch's run dir (a multirun: every job dir already under its sweep dir), on the first process only:
    the ranks a DDP launcher starts later find rank 0's run there."""
    from transferlab.config import first_process

    _kept.clear()
    if not first_process():
        return
    if not multirun:
        run_dir = Path(cfg.hydra.run.dir).expanduser()
        claim(cfg, run_dir, f"hydra.run.dir={run_dir}")
        return
    sweep_dir = Path(cfg.hydra.sweep.dir).expanduser()
    for job_dir in sorted(p for p in sweep_dir.glob("*") if p.is_dir()):
        claim(cfg, job_dir, f"hydra.sweep.dir={sweep_dir} (job dir {job_dir.name})")


def _keep_record(run_dir: Path) -> None:
    files = [run_dir / "metrics.json", *sorted((run_dir / ".hydra").glob("*"))]
    _kept[run_dir.resolve()] = {p: p.read_bytes() for p in files if p.is_file()}


def record_failure(run_dir: Path, error: BaseException) -> None:
    """status failed and the error into metrics.json, unless the dir's record is not this launch's to replace: a
    dir refused to it, or a finished run that resume continued (its metrics.json and .hydra/ are put back)."""
    from transferlab.run.outputs import failure_record, write_metrics

    if isinstance(error, RunDirTaken):
        return
    kept = _kept.get(run_dir.resolve())
    if kept:
        for path, content in kept.items():
            path.write_bytes(content)
        return
    write_metrics(run_dir, failure_record(error))
