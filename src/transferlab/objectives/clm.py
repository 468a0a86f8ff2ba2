"""Causal LM on packed blocks: next-token cross-entropy, reported as perplexity."""

import torch
from torch import nn

from transferlab.objectives.metrics import Perplexity, per_stage


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

    def step(self, model, batch, stage: str) -> torch.Tensor:
        ids = batch["input_ids"]
        logits = model(input_ids=ids).logits[:, :-1]
        targets = ids[:, 1:]
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        self.metrics[stage]["perplexity"].update(loss.detach(), weight=targets.numel())
        return loss
