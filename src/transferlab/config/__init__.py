"""Where the config tree lives, and the set-up Hydra needs before it composes (schemas, resolvers)."""

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_SOURCE_ROOT = _PACKAGE_DIR.parent.parent  # the repo root in an editable install (src layout)


def _first_existing(*candidates: Path) -> Path:
    return next((p for p in candidates if p.exists()), candidates[-1])


# A wheel ships conf/ and data/ inside the package; an editable install reads them from the repo.
CONF_DIR = _first_existing(_PACKAGE_DIR / "conf", _SOURCE_ROOT / "conf")
DATA_DIR = _first_existing(_PACKAGE_DIR / "embedded", _SOURCE_ROOT / "data")


def project_root() -> str:
    """The repo root when running from a checkout, else the current directory (outputs/ goes there)."""
    if (_SOURCE_ROOT / "pyproject.toml").exists() and (_SOURCE_ROOT / "conf").exists():
        return str(_SOURCE_ROOT)
    return str(Path.cwd())


def cache_dir() -> Path:
    """Derived files shared by runs (trained tokenizers, UTF-8-repaired copies): $TRANSFERLAB_CACHE or
    ~/.cache/transferlab. Deleting it only costs recomputation."""
    return Path(os.environ.get("TRANSFERLAB_CACHE", Path.home() / ".cache" / "transferlab"))


def first_process() -> bool:
    """Rank 0, told before any process group exists: Lightning's DDP launcher starts ranks > 0 with LOCAL_RANK and
    NODE_RANK set, torchrun sets RANK, SLURM sets SLURM_PROCID (trainer=ddp_multinode); rank 0 has none above 0."""
    return all(os.environ.get(v, "0") == "0" for v in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


_ready = False


def setup() -> None:
    """Register schemas and resolvers once per process (idempotent)."""
    global _ready
    if _ready:
        return
    from transferlab.config.resolvers import register_resolvers
    from transferlab.config.schema import register_schemas

    register_schemas()
    register_resolvers()
    _ready = True
