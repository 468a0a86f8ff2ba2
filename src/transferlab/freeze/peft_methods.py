"""The peft methods behind freeze=peft: their config classes and defaults, the task type peft wraps a model as, and
which methods a model can take (refused in one line before training, with what works instead).

Everything here runs in Policy.apply, after the model is built; peft (the [lora] extra) is imported there, lazily.
"""

from __future__ import annotations

import re

from transferlab.errors import TransferlabError

ADAPTERS = ("lora", "dora", "ia3", "adalora")  # adapters inside the layers: they merge into the weights
PROMPTS = ("prompt_tuning", "prefix_tuning")  # virtual tokens ahead of the input: they never merge
METHODS = (*ADAPTERS, *PROMPTS)
CONFIG_CLASSES = {
    "lora": "LoraConfig",
    "dora": "LoraConfig",
    "ia3": "IA3Config",
    "adalora": "AdaLoraConfig",
    "prompt_tuning": "PromptTuningConfig",
    "prefix_tuning": "PrefixTuningConfig",
}
# What transferlab sets where peft has no default, or a different one (freeze=lora's r/alpha/dropout for the LoRA
# family; AdaLoRA's orthogonal regulariser is off, see check_keys). freeze.peft_config overrides any of them.
DEFAULTS = {
    "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1},
    "dora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "use_dora": True},
    "ia3": {},
    "adalora": {"lora_alpha": 16, "lora_dropout": 0.1, "orth_reg_weight": 0.0},
    "prompt_tuning": {"num_virtual_tokens": 8},
    "prefix_tuning": {"num_virtual_tokens": 8},
}
# Keys peft fills itself (the task type transferlab derives from the model, the base model's name): not for the user.
OWN_KEYS = {"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping"}

# Default target_modules: the attention projections (LoRA family); IA3 scales keys, values and the feed-forward
# input of its output layer (feedforward_modules). peft's own IA3 table covers the model types missing here.
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "modernbert": ["Wqkv"],
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "v_proj"],
    "t5": ["q", "v"],
    "bart": ["q_proj", "v_proj"],
}
IA3_TARGETS = {
    "modernbert": (["Wqkv", "mlp.Wo"], ["mlp.Wo"]),
    "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
}

# peft's task types, found from the model's class in transformers' own registries (first match wins)
TASK_TYPES = (
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING", "SEQ_CLS"),
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING", "TOKEN_CLS"),
    ("MODEL_FOR_QUESTION_ANSWERING_MAPPING", "QUESTION_ANS"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING", "CAUSAL_LM"),
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING", "SEQ_2_SEQ_LM"),
    ("MODEL_MAPPING", "FEATURE_EXTRACTION"),
)
ONE_PER_TEXT = ("SEQ_CLS", "SEQ_2_SEQ_LM")  # outputs that prepended virtual tokens leave the same shape
# peft hands a prefix to these through a forward argument named past_key_values, and checks that it exists
PREFIX_BY_SIGNATURE = ("SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS")


def task_type(model) -> str | None:
    """peft's task type for a transformers task model, or None (e.g. a masked LM: peft has none for it)."""
    import transformers

    for mapping, name in TASK_TYPES:
        try:
            if getattr(transformers, mapping)[type(model.config)] is type(model):
                return name
        except KeyError:
            continue
    return None


def refusal(method: str, model, task: str | None) -> str | None:
    """Why peft (or the model) can't run `method` on this model, or None when it can."""
    from transferlab.models.architectures import kind_of

    if method not in PROMPTS:
        return None
    if task is None:
        return f"peft has no task type for this model, and its {method} needs one"
    if method == "prompt_tuning" and task not in ONE_PER_TEXT:
        return f"prompt tuning prepends virtual tokens to the input, so every per-token output of {task} grows by them"
    arch = kind_of(model.config.to_dict())
    if method == "prompt_tuning" and task == "SEQ_CLS" and arch in ("decoder", "encoder-decoder"):
        an = "an" if arch.startswith("e") else "a"
        return (
            f"prompt tuning feeds it embeddings, and {an} {arch} classifier finds the token it pools in the input ids"
        )
    if method == "prefix_tuning" and task in PREFIX_BY_SIGNATURE and not _takes_past_key_values(model):
        return f"peft passes the prefix as past_key_values, which this {task} model's forward does not take"
    return None


def refuse_unsupported(method: str, model, task: str | None) -> None:
    """A method peft (or the model) can't run is refused in one line, naming the methods that work instead."""
    why = refusal(method, model, task)
    if why:
        instead = ", ".join(m for m in METHODS if m != method and refusal(m, model, task) is None)
        raise TransferlabError(f"freeze.method={method} on {type(model).__name__}: {why}; use {instead}")


def _takes_past_key_values(model) -> bool:
    """peft's own test: the task model's forward, or its backbone's, has a past_key_values argument."""
    import inspect

    return any("past_key_values" in inspect.signature(m.forward).parameters for m in (model, model.base_model))


def check_keys(method: str, given: dict, config_cls) -> None:
    """Every freeze.peft_config key must be a field of the method's peft config class."""
    import dataclasses

    valid = sorted(f.name for f in dataclasses.fields(config_cls) if f.name not in OWN_KEYS)
    unknown = [k for k in given if k not in valid]
    if unknown:
        raise TransferlabError(
            f"freeze.peft_config.{unknown[0]} is not a field of {config_cls.__name__} (freeze.method={method}); "
            f"its fields: {', '.join(valid)}"
        )
    if method == "adalora" and given.get("orth_reg_weight", 0.0) != 0.0:
        raise TransferlabError(
            "freeze.peft_config.orth_reg_weight: peft adds AdaLoRA's orthogonal regulariser to the model's own loss, "
            "which transferlab's objectives don't use; leave it at 0"
        )


def is_linear(module) -> bool:
    from torch import nn

    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"  # transformers' GPT-2 Conv1D


def default_targets(method: str, model, key: str) -> dict:
    """target_modules (and IA3's feedforward_modules) for the model's type, or an error naming its layers."""
    model_type = getattr(model.config, "model_type", None)
    if method == "ia3":
        from peft.utils.constants import (
            TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
        )
        from peft.utils.constants import (
            TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
        )

        if model_type in IA3_TARGETS:
            targets, feedforward = IA3_TARGETS[model_type]
            return {"target_modules": list(targets), "feedforward_modules": list(feedforward)}
        if model_type in TARGETS and model_type in FEEDFORWARD:
            return {"target_modules": list(TARGETS[model_type]), "feedforward_modules": list(FEEDFORWARD[model_type])}
    elif model_type in LORA_TARGETS:
        return {"target_modules": list(LORA_TARGETS[model_type])}
    raise TransferlabError(
        f"freeze.method={method} has no default target_modules for {model_type}; set {key}=[...] "
        f"from: {_linear_names(model)}"
    )


def _linear_names(model) -> str:
    return ", ".join(sorted({n.rsplit(".", 1)[-1] for n, m in model.base_model.named_modules() if is_linear(m)}))


def check_targets(targets, model, key: str) -> list:
    """The modules the targets match; targets that match nothing fail (peft's rules: a list matches module names by
    suffix, a string matches a whole name as a regular expression)."""
    if isinstance(targets, str):
        matched = [m for name, m in model.named_modules() if re.fullmatch(targets, name)]
        if not matched:
            raise TransferlabError(f"{key}='{targets}' matches no module of {type(model).__name__}")
        return matched
    linear = {n: m for n, m in model.base_model.named_modules() if is_linear(m)}
    matched = {t: [m for n, m in linear.items() if n == t or n.endswith("." + t)] for t in targets}
    unmatched = [t for t, modules in matched.items() if not modules]
    if unmatched:
        raise TransferlabError(
            f"{key} {unmatched} match no linear layer of {type(model).__name__}; choose from: {_linear_names(model)}"
        )
    return [m for modules in matched.values() for m in modules]
