"""What a model is, read from its config before transformers loads: type, kind, depth and position limit.

Kinds: "encoder" (bidirectional attention: BERT), "decoder" (causal: GPT) and "encoder-decoder" (T5, BART).
Objectives say which kinds they accept; this module says which kind a model is. The table covers the common
architectures; an unknown type with `is_encoder_decoder` in its config is an encoder-decoder, any other unknown type
is checked once its config loads (see models.py).
"""

import json
from pathlib import Path

from transferlab.errors import TransferlabError

KINDS = ("encoder", "decoder", "encoder-decoder")
_BY_KIND = {
    "encoder": "bert roberta distilbert albert electra deberta deberta-v2 xlm-roberta camembert mpnet modernbert ernie",
    "decoder": "gpt2 gpt_neo gpt_neox gptj llama mistral mixtral qwen2 qwen3 phi phi3 gemma gemma2 opt bloom falcon "
    "olmo smollm3",
    "encoder-decoder": "t5 mt5 umt5 bart mbart pegasus marian led longt5",
}
MODEL_KINDS = {model_type: kind for kind, types in _BY_KIND.items() for model_type in types.split()}
DESCRIBED = {
    "encoder": "encoder-only (bidirectional)",
    "decoder": "decoder-only (causal)",
    "encoder-decoder": "an encoder-decoder",
}
EXAMPLES = {"encoder": "model=tiny_bert", "decoder": "model=tiny_gpt2", "encoder-decoder": "model=tiny_t5"}
# Where each architecture family keeps its block count and its position limit in an HF config.
DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
POSITION_KEYS = ("max_position_embeddings", "n_positions")


def config_fields(model_cfg) -> dict:
    """The HF config fields known before transformers loads: model.config for a scratch build, else a local dir's
    config.json (with model.config's overrides on top); {} for a hub id."""
    if model_cfg.arch:
        return {"model_type": model_cfg.arch, **model_cfg.config}
    path = Path(str(model_cfg.name_or_path)).expanduser() / "config.json"
    fields = json.loads(path.read_text()) if path.is_file() else {}
    return {**fields, **model_cfg.config}


def kind_of(fields: dict) -> str | None:
    if fields.get("is_encoder_decoder"):
        return "encoder-decoder"
    return MODEL_KINDS.get(fields.get("model_type"))


def depth(fields: dict) -> int | None:
    return next((int(fields[k]) for k in DEPTH_KEYS if fields.get(k) is not None), None)


def max_positions(fields: dict) -> int | None:
    return next((int(fields[k]) for k in POSITION_KEYS if fields.get(k)), None)


def check_fits(objective_cls, fields: dict) -> None:
    """The objective must accept this kind of model; an unknown kind passes (nothing to check it against)."""
    kind = kind_of(fields)
    if kind is None or kind in objective_cls.model_kinds:
        return
    from transferlab.objectives import OBJECTIVES

    needed = " or ".join(DESCRIBED[k].split(" (")[0].removeprefix("an ") for k in objective_cls.model_kinds)
    article = "an" if needed[0] in "aeiou" else "a"
    instead = [name for name, cls in OBJECTIVES.items() if set(cls.model_kinds) == {kind}]
    use = f"use objective={'|'.join(instead)}, or " if instead else "use "
    example = EXAMPLES[next(iter(objective_cls.model_kinds))]
    raise TransferlabError(
        f"objective={objective_cls.name} needs {article} {needed} model, "
        f"but model type '{fields.get('model_type')}' is "
        f"{DESCRIBED[kind]}; {use}a model it accepts such as {example}"
    )


def check_positions(max_seq_len: int, fields: dict) -> None:
    limit = max_positions(fields)
    if limit and max_seq_len > limit:
        raise TransferlabError(
            f"data.max_seq_len={max_seq_len} exceeds the model's {limit} position embeddings; "
            "lower data.max_seq_len or raise the model's max_position_embeddings/n_positions"
        )
