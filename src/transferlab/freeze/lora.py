"""LoRA through peft (the [lora] extra), imported only when freeze=lora is chosen."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Optional

from transferlab.config.rules import at_least, probability
from transferlab.errors import TransferlabError
from transferlab.freeze.blocks import find_blocks
from transferlab.freeze.common import Policy, ids_of

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


@dataclass
class FreezeLoRA:
    name: str = "lora"
    r: int = at_least(8)
    alpha: int = at_least(16)
    dropout: float = probability(0.1)
    target_modules: Optional[List[str]] = None  # None: the architecture's attention projections
    merge_on_export: bool = True


class LoRA(Policy):
    """LoRA adapters (peft) on the attention projections; the untied head modules train in full (modules_to_save).
    A head module holding the tied word embeddings (GPT-2's lm_head, BERT-MLM's cls) stays frozen, as in peft's
    own LM recipes: training a copy of it would untie it from the embeddings."""

    name = "lora"
    Config = FreezeLoRA

    def apply(self, model):
        try:
            import peft
        except ImportError:
            raise TransferlabError("freeze=lora needs peft: pip install 'transferlab[lora]'") from None
        kind = type(model).__name__
        linear = {name: m for name, m in model.base_model.named_modules() if _is_linear(m)}
        available = ", ".join(sorted({name.rsplit(".", 1)[-1] for name in linear}))
        targets = self.cfg.target_modules
        if targets is None:
            model_type = getattr(getattr(model, "config", None), "model_type", None)
            if model_type not in LORA_TARGETS:
                raise TransferlabError(
                    f"freeze=lora has no default target_modules for {model_type}; set freeze.target_modules=[...] "
                    f"from: {available}"
                )
            targets = LORA_TARGETS[model_type]
        targets = list(targets)
        matched = {t: [n for n in linear if n == t or n.endswith("." + t)] for t in targets}
        unmatched = [t for t, names in matched.items() if not names]
        if unmatched:
            raise TransferlabError(
                f"freeze.target_modules {unmatched} match no linear layer of {kind}; choose from: {available}"
            )
        blocks = find_blocks(model)
        head_ids = ids_of(blocks.part_params()["head"])
        to_save = [
            name
            for name, m in model.named_children()
            if any(m is h for h in blocks.head) and all(id(p) in head_ids for p in m.parameters())
        ]
        conv1d = any(type(linear[n]).__name__ == "Conv1D" for names in matched.values() for n in names)
        config = peft.LoraConfig(
            r=self.cfg.r,
            lora_alpha=self.cfg.alpha,
            lora_dropout=self.cfg.dropout,
            target_modules=targets,
            modules_to_save=to_save or None,
            fan_in_fan_out=conv1d,  # GPT-2's Conv1D stores its weight transposed
        )
        return peft.get_peft_model(model, config)

    def model_for_export(self, model) -> tuple:
        if self.cfg.merge_on_export:
            # Merge a copy: merge_and_unload rewrites the modules in place, and the run may still use the peft model.
            return copy.deepcopy(model).merge_and_unload(), "model"
        return model, "adapter"


def _is_linear(module) -> bool:
    from torch import nn

    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"  # transformers' GPT-2 Conv1D
