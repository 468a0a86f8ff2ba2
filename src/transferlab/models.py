"""Build the HF task model: from config (random init) or from weights (hub id, local dir, a run's export/).

Initialising from an earlier run's weights is not resuming it: resume=auto|PATH restores a whole training state
from a .ckpt in trainer.fit; this module only ever loads weights.
"""

import os
from pathlib import Path

from transferlab.cli import did_you_mean
from transferlab.config.validate import check_objective_fits_model
from transferlab.errors import TransferlabError


def _check_fields(config, fields) -> None:
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}))
    for key in fields:
        if key not in known:  # transformers would keep an unknown key silently and ignore it
            raise TransferlabError(f"model.config.{key} is not a field of {type(config).__name__}{did_you_mean(key, known)}")


def _scratch_config(model_cfg):
    from transformers import AutoConfig

    try:
        default = AutoConfig.for_model(model_cfg.arch)
    except ValueError:
        from transformers import CONFIG_MAPPING

        raise TransferlabError(
            f"model.arch={model_cfg.arch} is not a transformers model type{did_you_mean(model_cfg.arch, CONFIG_MAPPING.keys())}"
        ) from None
    _check_fields(default, model_cfg.config)
    return AutoConfig.for_model(model_cfg.arch, **model_cfg.config)


def _pretrained_config(model_cfg):
    from transformers import AutoConfig

    name = str(model_cfg.name_or_path)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    local = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or local.exists() or name.count("/") > 1
    if looks_local and not local.is_dir():
        raise TransferlabError(
            f"model.name_or_path={name}: no such local directory (looked locally; not tried as a hub id); "
            "give an HF-format dir (e.g. a run's export/) or a hub id"
        )
    try:
        config = AutoConfig.from_pretrained(name, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        where = "a local dir without a usable config.json" if local.is_dir() else (
            f"not a local directory, and not loadable as a hub id (offline mode {'on' if offline else 'off'})"
        )
        raise TransferlabError(f"model.name_or_path={name}: {where} ({str(e).splitlines()[0]}); check the path or id") from None
    # model.config on a pretrained model changes fields that don't touch weights (e.g. dropout for fine-tuning).
    _check_fields(config, model_cfg.config)
    for key, value in model_cfg.config.items():
        setattr(config, key, value)
    return config


def max_positions(config) -> int | None:
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


def build_model(cfg, auto_class: str, tokenizer, extra: dict):
    """The task model named by the objective (e.g. AutoModelForMaskedLM), sized to the tokenizer."""
    import transformers

    model_cfg = cfg.model
    auto = getattr(transformers, auto_class)
    kwargs = {"attn_implementation": model_cfg.attn_implementation} if model_cfg.attn_implementation else {}
    if model_cfg.arch:
        config = _scratch_config(model_cfg)
        config.vocab_size = len(tokenizer)
    else:
        config = _pretrained_config(model_cfg)
        check_objective_fits_model(cfg.objective.name, config.model_type)
    limit = max_positions(config)
    if limit and cfg.data.max_seq_len > limit:
        raise TransferlabError(
            f"data.max_seq_len={cfg.data.max_seq_len} exceeds the model's {limit} position embeddings; lower data.max_seq_len"
        )
    for key in ("pad", "bos", "eos"):
        token_id = getattr(tokenizer, f"{key}_token_id")
        if token_id is not None:
            setattr(config, f"{key}_token_id", token_id)
    for key, value in extra.items():
        setattr(config, key, value)
    if model_cfg.arch or model_cfg.random_init:
        model = auto.from_config(config, **kwargs)
    else:
        # A different head size (e.g. new labels over an old classifier) is re-initialised, loudly by transformers.
        model = auto.from_pretrained(
            model_cfg.name_or_path, config=config, revision=model_cfg.revision,
            trust_remote_code=model_cfg.trust_remote_code, ignore_mismatched_sizes=True, **kwargs,
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model
