"""Checks on what a run borrows from outside transferlab: the mlflow package, the user's callbacks, and bitsandbytes
with a CUDA GPU. Each answers in one line before anything heavy loads (torch only when model.load_in asks for it)."""

import os
from importlib.util import find_spec
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import TransferlabError

# Freeze policies that keep a quantized backbone's weights frozen: no optimizer can update 4-bit or 8-bit weights.
QUANTIZED_FREEZES = ("lora", "backbone")


def _installed(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def tracking_uri(cfg: DictConfig) -> str:
    """logger.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else a SQLite store in outputs/ (MLflow 3's local
    default backend: its ./mlruns file store is in maintenance mode and refused unless MLFLOW_ALLOW_FILE_STORE)."""
    uri = cfg.logger.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return str(uri) if uri else "sqlite:///" + str((Path(cfg.paths.output_dir) / "mlflow.db").resolve())


def check_mlflow(cfg: DictConfig) -> None:
    mlflow = cfg.logger.get("mlflow")
    if mlflow is None:
        return
    if not _installed("mlflow"):
        raise TransferlabError("logger=mlflow needs the mlflow package; pip install transferlab[mlflow]")
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:") and not (_installed("sqlalchemy") and _installed("alembic")):
        raise TransferlabError(
            f"logger=mlflow with the SQLite store {uri} needs sqlalchemy and alembic; pip install transferlab[mlflow]"
        )


def locate(path: str):
    """The object a dotted path names, importing the longest module prefix that exists. Hydra's own locator logs
    its error before raising it, which would print a second line."""
    import importlib

    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if i > 1 and e.name and (module == e.name or module.startswith(e.name + ".")):
                continue  # this prefix is no module (not a module failing to import another): try a shorter one
            raise
        for attr in parts[i:]:
            obj = getattr(obj, attr)  # AttributeError: "module 'm' has no attribute 'X'"
        return obj
    raise ImportError(f"'{path}' is not a dotted path (module.Class)")


def check_callbacks(cfg: DictConfig) -> None:
    """Each callbacks.extra entry names a callable that imports (its module is imported; nothing is instantiated)."""
    for i, entry in enumerate(cfg.callbacks.get("extra") or []):
        where = f"callbacks.extra[{i}]"
        target = entry.get("_target_") if isinstance(entry, DictConfig) else None
        if not isinstance(target, str) or not target:
            shown = OmegaConf.to_container(entry) if OmegaConf.is_config(entry) else entry
            raise TransferlabError(
                f"{where}={shown} names no class; give {{_target_: my.module.MyCallback, ...its arguments}}"
            )
        try:
            found = locate(target)
        except Exception as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise TransferlabError(
                f"{where}._target_={target} cannot be imported ({reason}); check the dotted path, and that its "
                "module is on PYTHONPATH"
            ) from None
        if not callable(found):
            raise TransferlabError(f"{where}._target_={target} is not a class; name a lightning Callback class")


def check_load_in(cfg: DictConfig) -> None:
    model = cfg.model
    if not model.load_in:
        return
    setting = f"model.load_in={model.load_in}"
    if model.arch or model.random_init:
        raise TransferlabError(
            f"{setting} quantizes pretrained weights as they load, and this model is built from scratch; "
            "use model=pretrained model.name_or_path=..., or drop model.load_in"
        )
    if cfg.freeze.name not in QUANTIZED_FREEZES:
        raise TransferlabError(
            f"{setting} loads weights that no optimizer can update, and freeze={cfg.freeze.name} trains them; "
            f"use freeze={'|'.join(QUANTIZED_FREEZES)} (LoRA over a 4-bit model is QLoRA)"
        )
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    cuda = accelerator in ("auto", "gpu", "cuda") and _installed("torch") and _cuda_available()
    packages = [name for name in ("bitsandbytes", "accelerate") if not _installed(name)]
    if not cuda or packages:
        missing = "no CUDA GPU" if not cuda else f"{' and '.join(packages)} not installed"
        raise TransferlabError(
            f"{setting} needs a CUDA GPU and bitsandbytes; here {missing}: run it on a CUDA machine with "
            "pip install transferlab[quantize], or drop model.load_in (model.load_in=null)"
        )


def _cuda_available() -> bool:
    import torch  # only when model.load_in is set

    return torch.cuda.is_available()
