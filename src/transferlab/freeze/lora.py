"""freeze=lora: the LoRA short form of freeze=peft (peft_policy.py), with its keys at the top level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from transferlab.config.rules import at_least, probability
from transferlab.freeze.peft_methods import LORA_TARGETS
from transferlab.freeze.peft_policy import Peft

__all__ = ["LORA_TARGETS", "FreezeLoRA", "LoRA"]


@dataclass
class FreezeLoRA:
    name: str = "lora"
    r: int = at_least(8)
    alpha: int = at_least(16)
    dropout: float = probability(0.1)
    target_modules: Optional[List[str]] = None  # None: the architecture's attention projections
    merge_on_export: bool = True


class LoRA(Peft):
    """freeze=peft freeze.method=lora, configured by freeze.r, freeze.alpha, freeze.dropout, freeze.target_modules."""

    name = "lora"
    Config = FreezeLoRA
    targets_key = "freeze.target_modules"

    def method_config(self) -> tuple[str, dict]:
        given = {"r": self.cfg.r, "lora_alpha": self.cfg.alpha, "lora_dropout": self.cfg.dropout}
        if self.cfg.target_modules is not None:
            given["target_modules"] = list(self.cfg.target_modules)
        return "lora", given
