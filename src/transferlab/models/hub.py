"""Where weights come from: a local HF-format dir or a hub id, and whether the hub may be asked (offline mode);
and that a local model dir holds its tokenizer.

One place for these rules; the preflight checks, the model and tokenizer builders, transferlab-predict and
transferlab-generate call the same functions.
"""

import os
from pathlib import Path

from transferlab.errors import TransferlabError

# huggingface_hub and transformers read HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE is its older name); datasets also
# reads HF_DATASETS_OFFLINE.
OFFLINE_VARIABLES = {
    "models": ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"),
    "datasets": ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"),
}


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
                "and offline mode is on (HF_HUB_OFFLINE=1); "
                "download it once without HF_HUB_OFFLINE, or give a local dir"
            )


# What a saved tokenizer leaves in a dir (fast, WordPiece, BPE, SentencePiece, tiktoken; a byte-level one such as
# ByT5's has its tokenizer_config.json alone).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.spm",
    "*.tiktoken",
)


def check_tokenizer_files(path, where: str, fix: str) -> None:
    """A local model dir must hold its tokenizer: from a dir without one, AutoTokenizer builds a tokenizer of the
    special tokens alone, every word becomes unknown, and training and prediction go on without a word of warning.
    A hub id is not looked at (its files are the hub's)."""
    local = Path(str(path)).expanduser()
    if local.is_dir() and not any(next(local.glob(pattern), None) for pattern in TOKENIZER_FILES):
        raise TransferlabError(
            f"{where}: no tokenizer files in it (tokenizer.json, tokenizer_config.json or a "
            f"vocabulary), so every word would read as unknown; {fix}"
        )


def check_pretrained_tokenizer(cfg) -> None:
    """tokenizer=pretrained: the dir it loads (tokenizer.name_or_path, else model.name_or_path) holds a tokenizer."""
    if cfg.tokenizer.source != "pretrained":
        return
    key = "tokenizer.name_or_path" if cfg.tokenizer.get("name_or_path") else "model.name_or_path"
    path = cfg.tokenizer.get("name_or_path") or cfg.model.name_or_path
    if path:
        fix = "use tokenizer=train, or tokenizer.name_or_path=DIR (the tokenizer the model was trained with)"
        check_tokenizer_files(path, f"{key}={path}", fix)
