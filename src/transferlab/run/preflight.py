"""The run's inputs on disk (model dir or hub cache, checkpoint, data files), checked before the heavy imports.

Bad input must answer with one line, before training starts. These checks need at most `datasets` (and torch for a
checkpoint), and run quietly: no progress bar or library warning prints before the one line that says what's wrong.
"""

import logging
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.errors import TransferlabError


@dataclass
class Inputs:
    raw: dict  # split name -> datasets.Dataset, one column per field the objective reads
    resume_from: str | None  # a checked .ckpt to continue from, or None
    dropped: dict = field(default_factory=dict)  # split -> rows dropped for a missing value (data.missing=drop)
    task: dict = field(default_factory=dict)  # the splits before the cuts to size (data/identity.py); {}: a stream/mix

    def data_record(self) -> dict:
        """metrics.json's data/train_examples and split fingerprints (read on demand: hashing rows costs a read)."""
        from transferlab.data.identity import data_record

        return data_record(self.task, self.raw) if self.task else {}


@contextmanager
def quiet():
    """Silence datasets' progress bars and logs and Python warnings; restore them afterwards."""
    import datasets

    verbosity = datasets.logging.get_verbosity()
    bars_were_off = datasets.utils.are_progress_bars_disabled()
    datasets.logging.set_verbosity(logging.CRITICAL)  # e.g. "Failed to load JSON from file": we say it better
    datasets.utils.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if not bars_were_off:
            datasets.utils.enable_progress_bars()


def resume_path(cfg, run_dir: Path) -> str | None:
    """resume=auto continues <run>/checkpoints/last.ckpt when there is one; resume=PATH that file; never: nothing.
    The run dir was claimed before Hydra wrote to it (rundir.py); this is the same rule again at the job, where a
    dir holding a run but no last.ckpt still must not be trained over as a fresh run."""
    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        from transferlab.run.rundir import check_continuable

        last = run_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            return str(last)
        check_continuable(run_dir, f"hydra.run.dir={run_dir}")  # raises when the dir holds a run
        return None
    return str(cfg.resume)


_TRAINING_STATE = ("state_dict", "loops", "optimizer_states")
_FOR_RESUME = (
    "give another .ckpt, or resume=never to start fresh",
    "to initialise weights from an export use model=pretrained model.name_or_path=DIR",
)


def read_checkpoint(
    path: str, where: str | None = None, fixes: tuple = _FOR_RESUME, needs: tuple = _TRAINING_STATE
) -> dict:
    """Load a Lightning checkpoint safely (weights_only: no code runs) or say in one line why it can't be used.
    `where` names the setting that gave the file (default resume=PATH); `fixes` say what to do about an unreadable
    file and about one without `needs` (the training state to continue from; transferlab-eval needs only weights)."""
    import torch

    where = where or f"resume={path}"
    unreadable, not_lightning = fixes
    try:
        # mmap: a large checkpoint is mapped, not read, so this check costs little before the real load.
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        reason = first.split(". ")[0].rstrip(".")  # torch's messages go on for several sentences
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds Python objects that a safe load (weights_only=True) refuses"
        raise TransferlabError(
            f"{where}: not a readable checkpoint, truncated or corrupt? ({reason}); {unreadable}"
        ) from None
    missing = [k for k in needs if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        kind = "training checkpoint" if "loops" in needs else "checkpoint"
        raise TransferlabError(f"{where}: not a Lightning {kind} (no {', '.join(missing)}); {not_lightning}")
    return ckpt


def check_same_optimizer(cfg, ckpt: dict, path: str) -> None:
    """A training checkpoint holds its optimizer's state (AdamW's moments, Adafactor's factors): another optimizer
    cannot continue from it. Checkpoints written before the name was recorded are not checked."""
    saved = (ckpt.get("transferlab") or {}).get("optimizer")
    if not saved or saved == cfg.optimizer.name:
        return
    where = f"resume=auto ({path})" if cfg.resume == "auto" else f"resume={path}"
    export = Path(path).resolve().parent.parent / "export"
    weights = f" from its weights (model=pretrained model.name_or_path={export})" if export.is_dir() else ""
    raise TransferlabError(
        f"{where}: the checkpoint holds {saved}'s optimizer state, this run asks for optimizer.name="
        f"{cfg.optimizer.name}; resume with optimizer.name={saved}, or start a new run in another hydra.run.dir"
        f"{weights}"
    )


def check_checkpoint_fits(module, ckpt: str) -> None:
    """The checkpoint's weights must have this model's names and shapes: say so in one line, not in Lightning's
    hundred-line load_state_dict error."""
    theirs = read_checkpoint(ckpt)["state_dict"]
    ours = module.state_dict()
    wrong = [
        f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}"
        for k, v in ours.items()
        if k in theirs and theirs[k].shape != v.shape
    ]
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    problems = wrong + [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in extra]
    if problems:
        shown = "; ".join(problems[:2]) + (f"; and {len(problems) - 2} more" if len(problems) > 2 else "")
        raise TransferlabError(
            f"resume={ckpt}: its weights don't fit this model ({shown}); "
            "resume with the config of the run that wrote it"
        )


def check_inputs(cfg, run_dir: Path) -> Inputs:
    """Every input check that needs the file system, cheapest first; returns what later steps reuse."""
    from transferlab.data.loading import load_splits, load_task
    from transferlab.data.splits import size_splits
    from transferlab.models.hub import check_model_source, check_pretrained_tokenizer
    from transferlab.objectives import OBJECTIVES

    objective = OBJECTIVES[cfg.objective.name]
    with quiet():
        check_model_source(cfg.model)
        check_pretrained_tokenizer(cfg)
        resume_from = resume_path(cfg, run_dir)
        if resume_from:
            check_same_optimizer(cfg, read_checkpoint(resume_from), resume_from)
        task = {}
        if cfg.data.sources:
            from transferlab.data.union import load_mix

            raw, dropped = load_mix(cfg, objective)
        elif cfg.data.streaming:
            raw, dropped = load_splits(cfg.data, objective)
        else:
            task, dropped = load_task(cfg.data, objective)
            raw = size_splits(task, cfg.data, objective.stratify)
        objective.check_splits(raw, cfg)
    return Inputs(raw, resume_from, dropped, task)
