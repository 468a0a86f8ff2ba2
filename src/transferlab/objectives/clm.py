"""Causal LM on packed blocks: next-token cross-entropy, reported as perplexity.

With loss_chunk > 0 (default) the vocabulary projection and the loss run together, `loss_chunk` rows at a time
(objectives/lm_loss.py): the [batch, block, vocab] logits are never made, for architectures whose logits are their
output embedding applied to the last hidden state (LM_HEADS); others project densely, as with loss_chunk=0.
compile=true compiles the model and the loss as one function (`compile`).
"""

from dataclasses import dataclass

from transferlab.config.rules import at_least
from transferlab.objectives.base import IGNORE, Objective
from transferlab.objectives.smoothing import CrossEntropyConfig

# Causal LMs whose logits are exactly output_embeddings(last_hidden_state): no logit scaling or soft-capping after it.
LM_HEADS = {"gpt2", "gpt_neox", "gptj", "llama", "mistral", "qwen2", "qwen3", "opt", "phi3", "gpt_bigcode"}


@dataclass
class CLMConfig(CrossEntropyConfig):
    name: str = "clm"
    loss_chunk: int = at_least(1024, 0, hint="rows of logits at a time; 0 projects all positions at once")


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
        self.vocab = len(tokenizer)  # columns from here on are model.vocab_multiple's padding, never a target
        self.chunk = int(cfg.loss_chunk)  # a plain int: a config read inside the compiled loss would break its graph
        self.loss = self.block_loss

    def prepare(self, split: str, dataset):
        from transferlab.data.packing import packed_blocks

        return packed_blocks(
            dataset, self.tokenizer, self.data_cfg.max_seq_len, {"objective": "lm"}, self.data_cfg.num_proc
        )

    def collator(self, stage: str):
        from transferlab.objectives.collate import BlockCollator

        return BlockCollator()

    def compile(self, model, mode: str = "default") -> None:
        """The model's forward and the loss in one compiled function (blocks have one shape: one graph)."""
        import torch

        self.loss = torch.compile(self.block_loss, mode=mode)

    def block_loss(self, model, ids, smoothing: float = 0.0):
        """Mean next-token loss (label smoothing `smoothing` over the real vocabulary) and plain cross-entropy of a
        [batch, block] tensor of token ids."""
        from torch import nn

        from transferlab.objectives.lm_loss import masked_padding, smoothed_linear_cross_entropy
        from transferlab.objectives.metrics import unwrap
        from transferlab.objectives.smoothing import smoothed_cross_entropy, vocabulary_columns

        # Shift the targets, not the logits: logits[:, :-1] would copy the [batch, block, vocab] tensor (and
        # zero-fill + scatter its gradient); the last position has no next token and is ignored instead.
        targets = nn.functional.pad(ids[:, 1:], (0, 1), value=IGNORE).flatten()
        task_model = unwrap(model)
        if self.chunk and task_model.config.model_type in LM_HEADS:
            hidden = task_model.base_model(input_ids=ids).last_hidden_state
            head = task_model.get_output_embeddings()
            flat = hidden.flatten(0, 1)
            return smoothed_linear_cross_entropy(
                flat, head.weight, targets, head.bias, self.chunk, self.vocab, smoothing
            )
        logits = masked_padding(model(input_ids=ids).logits.flatten(0, 1).float(), self.vocab)
        return smoothed_cross_entropy(logits, targets, smoothing, vocabulary_columns(logits, self.vocab))

    def step(self, model, batch, stage: str):
        from transferlab.objectives.smoothing import smoothing

        ids = batch["input_ids"]
        loss, nll = self.loss(model, ids, smoothing(self.cfg, stage))
        self.metrics[stage]["perplexity"].update(nll.detach(), weight=ids.numel() - ids.size(0))  # plain cross-entropy
        return loss
