"""Causal LM on packed blocks: next-token cross-entropy, reported as perplexity."""

from dataclasses import dataclass

from transferlab.objectives.base import Objective

IGNORE = -100


@dataclass
class CLMConfig:
    name: str = "clm"


class CausalLM(Objective):
    name = "clm"
    Config = CLMConfig
    model_kinds = ("decoder",)
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"
    streams = True

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import Perplexity, per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.metrics = per_stage(lambda: nn.ModuleDict({"perplexity": Perplexity()}))

    def prepare(self, split: str, dataset):
        from transferlab.data.packing import packed_blocks

        return packed_blocks(dataset, self.tokenizer, self.data_cfg.max_seq_len, {"objective": "lm"}, self.data_cfg.num_proc)

    def collator(self, stage: str):
        from transferlab.objectives.collate import BlockCollator

        return BlockCollator()

    def step(self, model, batch, stage: str):
        from torch import nn

        ids = batch["input_ids"]
        logits = model(input_ids=ids).logits
        # Shift the targets, not the logits: logits[:, :-1] would copy the [batch, block, vocab] tensor (and
        # zero-fill + scatter its gradient); the last position has no next token and is ignored instead.
        targets = nn.functional.pad(ids[:, 1:], (0, 1), value=IGNORE)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)
        self.metrics[stage]["perplexity"].update(loss.detach(), weight=ids.numel() - ids.size(0))
        return loss
