"""Where weights come from: a local HF-format dir or a hub id, and whether the hub may be asked (offline mode).

One place for both rules; the preflight checks and the model builder call the same functions.
"""

import os
from pathlib import Path

from transferlab.errors import TransferlabError

# huggingface_hub and transformers read HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE is its older name); datasets also
# reads HF_DATASETS_OFFLINE.
OFFLINE_VARIABLES = {"models": ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"), "datasets": ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}


def offline(kind: str = "models") -> bool:
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in OFFLINE_VARIABLES[kind])


def offline_note(kind: str = "models") -> str:
    return f"offline mode {'on' if offline(kind) else 'off'}"


def local_dir(name: str) -> Path | None:
    """The local directory `name` points at; None when it reads as a hub id. A path-looking name that is not a
    directory is an error here, never retried as a hub id."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or local.exists():
        raise TransferlabError(
            f"model.name_or_path={name}: no such local directory (looked locally at {local.absolute()}; "
            f"not tried as a hub id; {offline_note()}); give an HF-format dir such as a run's export/, or a hub id"
        )
    return None


def check_model_source(model_cfg) -> None:
    """model.name_or_path must be a local HF-format dir, or a hub id (in the HF cache when offline)."""
    if not model_cfg.name_or_path:
        return
    name = str(model_cfg.name_or_path)
    local = local_dir(name)
    if local is not None:
        if not (local / "config.json").is_file():
            raise TransferlabError(
                f"model.name_or_path={name}: a local directory without config.json (looked locally; {offline_note()}); "
                "give an HF-format dir such as a run's export/"
            )
        return
    if offline():
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
