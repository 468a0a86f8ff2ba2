"""Build the HF task model: from config (random init) or from weights (hub id, local dir, a run's export/).

Initialising from an earlier run's weights is not resuming it: resume=auto|PATH restores a whole training state
from a .ckpt in trainer.fit; this module only ever loads weights.
"""

from transferlab.errors import TransferlabError, did_you_mean


def _check_fields(config, fields) -> None:
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}))
    for key in fields:
        if key not in known:  # transformers would keep an unknown key silently and ignore it
            raise TransferlabError(
                f"model.config.{key} is not a field of {type(config).__name__}{did_you_mean(key, known)}"
            )


def _scratch_config(model_cfg):
    from transformers import AutoConfig

    try:
        default = AutoConfig.for_model(model_cfg.arch)
    except ValueError:
        from transformers import CONFIG_MAPPING

        raise TransferlabError(
            f"model.arch={model_cfg.arch} is not a transformers model type"
            f"{did_you_mean(model_cfg.arch, CONFIG_MAPPING.keys())}"
        ) from None
    _check_fields(default, model_cfg.config)
    return AutoConfig.for_model(model_cfg.arch, **model_cfg.config)


def _pretrained_config(model_cfg):
    from transformers import AutoConfig

    from transferlab.models.hub import local_dir, offline_note

    name = str(model_cfg.name_or_path)
    local = local_dir(name)
    try:
        config = AutoConfig.from_pretrained(
            name, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code
        )
    except (OSError, ValueError) as e:
        where = (
            "a local dir without a usable config.json"
            if local
            else f"not a local directory, and not loadable as a hub id ({offline_note()})"
        )
        raise TransferlabError(
            f"model.name_or_path={name}: {where} ({str(e).splitlines()[0]}); check the path or id"
        ) from None
    # model.config on a pretrained model changes fields that don't touch weights (e.g. dropout for fine-tuning).
    _check_fields(config, model_cfg.config)
    for key, value in model_cfg.config.items():
        setattr(config, key, value)
    return config


def build_model(cfg, objective, tokenizer):
    """The task model the objective names (e.g. AutoModelForMaskedLM), sized to the tokenizer."""
    import transformers

    from transferlab.models.architectures import check_fits, check_positions

    model_cfg = cfg.model
    auto = getattr(transformers, objective.auto_class)
    kwargs = {"attn_implementation": model_cfg.attn_implementation} if model_cfg.attn_implementation else {}
    if model_cfg.arch:
        config = _scratch_config(model_cfg)
        config.vocab_size = len(tokenizer)
    else:
        config = _pretrained_config(model_cfg)
    # The preflight checked what a config file told it; a hub model's config is known only now.
    fields = config.to_dict()
    check_fits(type(objective), fields)
    check_positions(cfg.data.max_seq_len, fields)
    for key in ("pad", "bos", "eos", "cls", "sep"):  # cls/sep: the config fields some encoders keep (ModernBERT)
        token_id, field = getattr(tokenizer, f"{key}_token_id"), f"{key}_token_id"
        if token_id is not None and (key in ("pad", "bos", "eos") or hasattr(config, field)):
            setattr(config, field, token_id)
        elif token_id is None and (getattr(config, field, None) or 0) >= len(tokenizer):
            setattr(config, field, None)  # an architecture default outside this vocabulary (ModernBERT's 50281)
    for key, value in objective.model_config().items():
        setattr(config, key, value)
    if config.is_encoder_decoder and getattr(config, "decoder_start_token_id", None) is None:
        config.decoder_start_token_id = config.pad_token_id  # T5's convention: the decoder starts from <pad>
    if model_cfg.arch or model_cfg.random_init:
        model = auto.from_config(config, **kwargs)
    else:
        if model_cfg.load_in:
            kwargs.update(quantized_loading(model_cfg.load_in))
        # A different head size (e.g. new labels over an old classifier) is re-initialised, loudly by transformers.
        model = auto.from_pretrained(
            model_cfg.name_or_path,
            config=config,
            revision=model_cfg.revision,
            trust_remote_code=model_cfg.trust_remote_code,
            ignore_mismatched_sizes=True,
            **kwargs,
        )
    rows = model.get_input_embeddings().num_embeddings
    multiple = model_cfg.vocab_multiple
    if len(tokenizer) > rows or (multiple and rows % multiple):
        # New tokens start from the old embeddings' mean and covariance; padding alone needs no such init.
        model.resize_token_embeddings(
            max(rows, len(tokenizer)), pad_to_multiple_of=multiple, mean_resizing=len(tokenizer) > rows
        )
    _suppress_padding(model, len(tokenizer))
    if model_cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def enable_gradient_checkpointing(model) -> None:
    """Each block's activations are recomputed in the backward instead of kept: less memory, about one more forward
    per step. Non-reentrant checkpointing: exact gradients, also when the embeddings are frozen (LoRA, BitFit)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise TransferlabError(
            f"model.gradient_checkpointing=true: {type(model).__name__} does not support gradient checkpointing in "
            "transformers; set model.gradient_checkpointing=false"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.24; the older name warns there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def quantized_loading(load_in: str) -> dict:
    """from_pretrained's arguments for weights quantized by bitsandbytes as they load: 4-bit NF4 with double
    quantization and bf16 compute where the GPU has it (the QLoRA recipe), or LLM.int8(). Placed whole on this
    process's GPU (DDP: its local rank), since bitsandbytes' layers compute on CUDA only. Untested here (no GPU);
    the config checks refuse it without CUDA and bitsandbytes (config/optional.py)."""
    import os

    import torch
    from transformers import BitsAndBytesConfig

    if load_in == "4bit":
        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    else:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    local_rank = os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID"))
    device = int(local_rank) if local_rank is not None else torch.cuda.current_device()
    return {"quantization_config": quantization, "device_map": {"": device}}


def _suppress_padding(model, vocab: int) -> None:
    """Embedding rows beyond the tokenizer are no tokens: generate() must never emit them (the losses mask them)."""
    rows = model.get_input_embeddings().num_embeddings
    if rows > vocab and getattr(model, "generation_config", None) is not None and model.can_generate():
        model.generation_config.suppress_tokens = list(range(vocab, rows))
