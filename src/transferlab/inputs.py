"""The run's inputs on disk (model dir or hub cache, checkpoint, data files), checked before the heavy imports.

Bad input must answer with one line, before training starts. These checks need at most `datasets` (and torch for a
checkpoint), and run quietly: no progress bar or library warning prints before the one line that says what's wrong.
"""

import json
import logging
import os
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from transferlab.errors import TransferlabError

# Where each architecture family keeps its block count in an HF config.
_DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


@dataclass
class Inputs:
    raw: dict  # split name -> datasets.Dataset with columns text (+ label)
    label2id: dict | None
    resume_from: str | None  # a checked .ckpt to continue from, or None


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


def _offline() -> bool:
    return any(os.environ.get(k) == "1" for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model_source(model_cfg) -> None:
    """model.name_or_path must be a local HF-format dir, or a hub id (in the HF cache when offline)."""
    name = model_cfg.name_or_path
    if not name:
        return
    name = str(name)
    local = Path(name).expanduser()
    offline = f"offline mode {'on' if _offline() else 'off'}"
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TransferlabError(
                f"model.name_or_path={name}: a local directory without config.json (looked locally; {offline}); "
                "give an HF-format dir such as a run's export/"
            )
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise TransferlabError(
            f"model.name_or_path={name}: no such local directory (looked locally at {local.absolute()}; "
            f"not tried as a hub id; {offline}); give an HF-format dir such as a run's export/, or a hub id"
        )
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(name, "config.json", revision=model_cfg.revision)
        except Exception:  # an id the hub would reject, e.g. with spaces
            cached = None
        if not isinstance(cached, str):
            raise TransferlabError(
                f"model.name_or_path={name}: not a local directory (looked locally) and not in the HF cache, "
                "and offline mode is on (HF_HUB_OFFLINE=1); download it once without HF_HUB_OFFLINE, or give a local dir"
            )


def _model_depth(model_cfg) -> int | None:
    """The number of transformer blocks, when the config says so without loading transformers."""
    if model_cfg.arch:
        fields = model_cfg.config
    else:
        path = Path(str(model_cfg.name_or_path)).expanduser() / "config.json"
        fields = json.loads(path.read_text()) if path.is_file() else {}
    return next((int(fields[k]) for k in _DEPTH_KEYS if fields.get(k) is not None), None)


def check_freeze_depth(cfg) -> None:
    if cfg.freeze.name != "top_k":
        return
    depth = _model_depth(cfg.model)
    if depth is not None and cfg.freeze.k > depth:
        raise TransferlabError(
            f"freeze.k={cfg.freeze.k} but the model has {depth} blocks; use freeze.k <= {depth} "
            "(freeze=none trains every block)"
        )


def resume_path(cfg, run_dir: Path) -> str | None:
    """resume=auto continues <run>/checkpoints/last.ckpt when there is one; resume=PATH that file; never: nothing."""
    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    return str(cfg.resume)


def read_checkpoint(path: str) -> dict:
    """Load a Lightning checkpoint safely (weights_only: no code runs) or say in one line why it can't be used."""
    import torch

    where = f"resume={path}"
    try:
        # mmap: a large checkpoint is mapped, not read, so this check costs little before the real load.
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        reason = first.split(". ")[0].rstrip(".")  # torch's messages go on for several sentences
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds Python objects that a safe load (weights_only=True) refuses"
        raise TransferlabError(
            f"{where}: not a readable checkpoint, truncated or corrupt? ({reason}); "
            "give another .ckpt, or resume=never to start fresh"
        ) from None
    missing = [k for k in ("state_dict", "loops", "optimizer_states") if k not in ckpt]
    if missing:
        raise TransferlabError(
            f"{where}: not a Lightning training checkpoint (no {', '.join(missing)}); to initialise weights from an "
            "export use model=pretrained model.name_or_path=DIR"
        )
    return ckpt


def check_inputs(cfg, run_dir: Path) -> Inputs:
    """Every input check that needs the file system, cheapest first; returns what later steps reuse."""
    from transferlab.data.loading import label_mapping, load_splits

    with quiet():
        check_model_source(cfg.model)
        check_freeze_depth(cfg)
        resume_from = resume_path(cfg, run_dir)
        if resume_from:
            read_checkpoint(resume_from)
        labeled = cfg.objective.name == "classification"
        raw = load_splits(cfg.data, labeled=labeled)
        label2id = label_mapping(raw) if labeled else None
    return Inputs(raw, label2id, resume_from)
