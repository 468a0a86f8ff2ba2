"""Causal LM on packed blocks: next-token cross-entropy, reported as perplexity."""

import torch
from torch import nn

from transferlab.objectives.metrics import Perplexity, per_stage

IGNORE = -100


class BlockCollator:
    """Packed blocks are equal-length: stacking is all there is (no padding, no attention mask)."""

    def __call__(self, examples):
        return {"input_ids": torch.stack(examples)}


class CausalLM(nn.Module):
    auto_class = "AutoModelForCausalLM"
    packed = True
    monitor = ("val/loss", "min")

    def __init__(self, cfg, tokenizer, label2id=None):
        super().__init__()
        self.collator = BlockCollator()
        self.metrics = per_stage(lambda: nn.ModuleDict({"perplexity": Perplexity()}))

    def model_config(self) -> dict:
        return {}

    def compile_targets(self, model) -> list:
        return [model]

    def step(self, model, batch, stage: str) -> torch.Tensor:
        ids = batch["input_ids"]
        logits = model(input_ids=ids).logits
        # Shift the targets, not the logits: logits[:, :-1] would copy the [batch, block, vocab] tensor (and
        # zero-fill + scatter its gradient); the last position has no next token and is ignored instead.
        targets = nn.functional.pad(ids[:, 1:], (0, 1), value=IGNORE)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)
        self.metrics[stage]["perplexity"].update(loss.detach(), weight=ids.numel() - ids.size(0))
        return loss
