"""Masked LM: dynamic 15/80/10/10 masking (optionally whole words), accuracy on masked tokens and perplexity.

Each batch's masks are drawn from its own seed (data/buckets.py): new masks every epoch, the same ones in a worker
process, after a resume, and at every validation.

With sparse_head (default) the vocabulary projection runs only at masked positions: ~85% of a dense head's
FLOPs are spent on positions whose loss is ignored. Loss and accuracy are the same as the dense computation.
The collator lists the masked positions (flat indices into the batch) on the CPU, so the device gathers them with
index_select: no boolean indexing, hence no host sync, and the encoder keeps static shapes for torch.compile.
"""

from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective
from transferlab.config.rules import probability

IGNORE = -100


@dataclass
class MLMConfig:
    name: str = "mlm"
    mlm_probability: float = probability(0.15)
    mask_replace_prob: float = probability(0.8)  # of the selected tokens: 80% [MASK]
    random_replace_prob: float = probability(0.1)  # 10% a random token, the rest unchanged
    whole_word_mask: bool = False
    sparse_head: bool = True  # vocabulary logits only at masked positions


class MLMCollator:
    def __init__(self, tokenizer, cfg):
        import torch

        if tokenizer.mask_token_id is None:
            raise TransferlabError("objective=mlm needs a tokenizer with a mask token; use tokenizer=train or a BERT-style tokenizer")
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        self.special = torch.zeros(size, dtype=torch.bool)
        self.special[torch.tensor(tokenizer.all_special_ids)] = True
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)
        self.p, self.p_mask, self.p_random = cfg.mlm_probability, cfg.mask_replace_prob, cfg.random_replace_prob
        self.continuation = None
        if cfg.whole_word_mask:
            # A token continues the previous word: '##x' in WordPiece, no leading 'Ġ' (space) in byte-level BPE.
            byte_level = any(t.startswith("Ġ") for t in vocab)
            self.continuation = torch.zeros(size, dtype=torch.bool)
            for token, i in vocab.items():
                self.continuation[i] = (not token.startswith("Ġ")) if byte_level else token.startswith("##")
            self.continuation &= ~self.special

    def _select(self, input_ids, rng):
        import torch

        special = self.special[input_ids]
        if self.continuation is None:
            chosen = torch.bernoulli(torch.full(input_ids.shape, self.p), generator=rng).bool()
        else:
            # Number the words in each row, draw once per word, and spread the draw over the word's tokens.
            starts = ~self.continuation[input_ids]
            word = torch.cumsum(starts.long(), dim=1)
            per_word = torch.bernoulli(torch.full((input_ids.size(0), input_ids.size(1) + 1), self.p), generator=rng).bool()
            chosen = per_word.gather(1, word)
        return chosen & ~special

    def __call__(self, examples):
        import torch

        from transferlab.objectives.collate import generator

        rng = generator(examples)
        input_ids = torch.stack(examples).clone()
        chosen = self._select(input_ids, rng)
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
        to_mask = chosen & torch.bernoulli(torch.full(input_ids.shape, self.p_mask), generator=rng).bool()
        rest = 1.0 - self.p_mask
        to_random = chosen & ~to_mask & torch.bernoulli(torch.full(input_ids.shape, self.p_random / rest if rest else 0.0), generator=rng).bool()
        input_ids[to_mask] = self.mask_id
        input_ids[to_random] = torch.randint(self.vocab_size, (int(to_random.sum()),), generator=rng)
        positions = chosen.flatten().nonzero().squeeze(1)
        return {"input_ids": input_ids, "labels": labels, "masked_positions": positions}


def _distilbert_head(model):
    return lambda h: model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(h))))


# The module that maps hidden states to vocabulary logits, per architecture (HF names differ).
MLM_HEADS = {
    "bert": lambda m: m.cls,
    "roberta": lambda m: m.lm_head,
    "xlm-roberta": lambda m: m.lm_head,
    "camembert": lambda m: m.lm_head,
    "electra": lambda m: (lambda h: m.generator_lm_head(m.generator_predictions(h))),
    "distilbert": _distilbert_head,
    "modernbert": lambda m: (lambda h: m.decoder(m.head(h))),
}


class MaskedLM(Objective):
    name = "mlm"
    Config = MLMConfig
    model_kinds = ("encoder",)
    auto_class = "AutoModelForMaskedLM"
    pipeline_tag = "fill-mask"
    streams = True

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        o = cfg.objective
        if o.mask_replace_prob + o.random_replace_prob > 1:
            raise TransferlabError(
                f"objective.mask_replace_prob={o.mask_replace_prob} + objective.random_replace_prob={o.random_replace_prob} "
                "exceed 1; they share the selected tokens (the rest stay unchanged)"
            )

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import FiniteMean, Perplexity, per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.sparse_head = cfg.sparse_head
        self._collator = MLMCollator(tokenizer, cfg)
        self.metrics = per_stage(lambda: nn.ModuleDict({"acc": FiniteMean(), "perplexity": Perplexity()}))

    def prepare(self, split: str, dataset):
        from transferlab.data.packing import packed_blocks

        return packed_blocks(dataset, self.tokenizer, self.data_cfg.max_seq_len, {"objective": "lm"}, self.data_cfg.num_proc)

    def collator(self, stage: str):
        return self._collator

    def compile_targets(self, model) -> list:
        """The encoder alone when the sparse head runs outside model.forward."""
        from transferlab.objectives.metrics import unwrap

        task_model = unwrap(model)
        return [task_model.base_model] if self._sparse_head(task_model) else [model]

    def _sparse_head(self, task_model):
        return MLM_HEADS.get(task_model.config.model_type) if self.sparse_head else None

    def logits_at_masked(self, model, input_ids, positions):
        """Vocabulary logits for the masked positions only: [n_masked, vocab]."""
        from transferlab.objectives.metrics import unwrap

        task_model = unwrap(model)
        head = self._sparse_head(task_model)
        if head is None:
            return model(input_ids=input_ids).logits.flatten(0, 1).index_select(0, positions)
        hidden = task_model.base_model(input_ids=input_ids).last_hidden_state
        return head(task_model)(hidden.flatten(0, 1).index_select(0, positions))

    def step(self, model, batch, stage: str):
        from torch import nn

        positions = batch["masked_positions"]
        if positions.numel() == 0:  # a batch where nothing was drawn: no loss, nothing to learn
            return (sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0)
        targets = batch["labels"].flatten().index_select(0, positions)
        logits = self.logits_at_masked(model, batch["input_ids"], positions).float()
        loss = nn.functional.cross_entropy(logits, targets)
        metrics = self.metrics[stage]
        metrics["acc"].update((logits.argmax(-1) == targets).float())
        metrics["perplexity"].update(loss.detach(), weight=targets.numel())
        return loss
