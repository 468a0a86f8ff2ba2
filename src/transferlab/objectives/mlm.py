"""Masked LM: dynamic 15/80/10/10 masking (optionally whole words), accuracy on masked tokens and perplexity.

Each batch's masks are drawn from its own seed (data/buckets.py): new masks every epoch, the same ones in a worker
process, after a resume, and at every validation.

With sparse_head (default) the vocabulary projection runs only at masked positions: ~85% of a dense head's
FLOPs are spent on positions whose loss is ignored. Loss and accuracy are the same as the dense computation.
The collator lists the masked positions (flat indices into the batch) on the CPU, so the device gathers them with
index_select: no boolean indexing, hence no host sync, and the encoder keeps static shapes for torch.compile.

Under compile=true the number of masked rows is made static too, so that encoder, head and loss compile as one graph:
the position list is padded to `static_count` rows (mean + 6 standard deviations of the draw, a multiple of 8) whose
targets are IGNORE. A draw beyond that (odds about 1e-9 a batch for token draws; whole-word draws spread more) keeps a
random `static_count` of its tokens masked and leaves the rest unchanged, as BERT's max_predictions_per_seq does.
"""

from dataclasses import dataclass

from transferlab.config.rules import probability
from transferlab.errors import TransferlabError
from transferlab.objectives.base import IGNORE, Objective
from transferlab.objectives.smoothing import CrossEntropyConfig


@dataclass
class MLMConfig(CrossEntropyConfig):
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
            raise TransferlabError(
                "objective=mlm needs a tokenizer with a mask token; use tokenizer=train or a BERT-style tokenizer"
            )
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        self.special = torch.zeros(size, dtype=torch.bool)
        self.special[torch.tensor(tokenizer.all_special_ids)] = True
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)
        self.p, self.p_mask, self.p_random = cfg.mlm_probability, cfg.mask_replace_prob, cfg.random_replace_prob
        self.continuation = None
        self.static = False  # compile=true: pad the masked positions to static_count (MaskedLM.compile)
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
            per_word = torch.bernoulli(
                torch.full((input_ids.size(0), input_ids.size(1) + 1), self.p), generator=rng
            ).bool()
            chosen = per_word.gather(1, word)
        return chosen & ~special

    def __call__(self, examples):
        import torch

        from transferlab.objectives.collate import generator

        rng = generator(examples)
        input_ids = torch.stack(examples).clone()
        chosen = self._select(input_ids, rng)
        rows = static_count(input_ids.numel(), self.p) if self.static else None
        if rows is not None and int(chosen.sum()) > rows:  # keep a random `rows` of the drawn tokens
            drawn = chosen.flatten().nonzero().squeeze(1)
            kept = drawn[torch.randperm(drawn.numel(), generator=rng)[:rows]]
            chosen = torch.zeros_like(chosen).flatten().index_fill_(0, kept, True).view_as(chosen)
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
        to_mask = chosen & torch.bernoulli(torch.full(input_ids.shape, self.p_mask), generator=rng).bool()
        rest = 1.0 - self.p_mask
        to_random = (
            chosen
            & ~to_mask
            & torch.bernoulli(torch.full(input_ids.shape, self.p_random / rest if rest else 0.0), generator=rng).bool()
        )
        input_ids[to_mask] = self.mask_id
        input_ids[to_random] = torch.randint(self.vocab_size, (int(to_random.sum()),), generator=rng)
        positions = chosen.flatten().nonzero().squeeze(1)
        batch = {"input_ids": input_ids, "labels": labels, "masked_positions": positions}
        batch.update(n_rows=len(examples), n_tokens=input_ids.numel())
        if rows is not None:  # padded to a static count: the padding points at row 0 and has no target
            targets = torch.full((rows,), IGNORE, dtype=torch.long)
            targets[: positions.numel()] = labels.flatten()[positions]
            batch["masked_positions"] = torch.cat([positions, positions.new_zeros(rows - positions.numel())])
            batch["masked_labels"] = targets
        return batch


def static_count(tokens: int, p: float) -> int:
    """Masked rows per batch under compile=true: mean + 6 sd of Binomial(tokens, p), up to a multiple of 8."""
    import math

    mean = tokens * p
    return min(tokens, max(8, math.ceil((mean + 6 * math.sqrt(mean * (1 - p))) / 8) * 8))


def _distilbert_head(model):
    return lambda h: model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(h))))


# The module that maps hidden states to vocabulary logits, per architecture (HF names differ).
MLM_HEADS = {
    "bert": lambda m: m.cls,
    "roberta": lambda m: m.lm_head,
    "xlm-roberta": lambda m: m.lm_head,
    "camembert": lambda m: m.lm_head,
    "electra": lambda m: lambda h: m.generator_lm_head(m.generator_predictions(h)),
    "distilbert": _distilbert_head,
    "modernbert": lambda m: lambda h: m.decoder(m.head(h)),
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
                f"objective.mask_replace_prob={o.mask_replace_prob} + "
                f"objective.random_replace_prob={o.random_replace_prob} "
                "exceed 1; they share the selected tokens (the rest stay unchanged)"
            )

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import FiniteMean, Perplexity, per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.sparse_head = cfg.sparse_head
        self._collator = MLMCollator(tokenizer, cfg)
        self.metrics = per_stage(lambda: nn.ModuleDict({"acc": FiniteMean(), "perplexity": Perplexity()}))
        self.vocab = len(tokenizer)  # columns from here on are model.vocab_multiple's padding, never a target
        self.loss = self.masked_loss

    def prepare(self, split: str, dataset):
        from transferlab.data.packing import packed_blocks

        return packed_blocks(
            dataset, self.tokenizer, self.data_cfg.max_seq_len, {"objective": "lm"}, self.data_cfg.num_proc
        )

    def collator(self, stage: str):
        return self._collator

    def compile(self, model, mode: str = "default") -> None:
        """Encoder, sparse head and loss as one compiled function, on a static number of masked rows."""
        import torch

        self._collator.static = True
        self.loss = torch.compile(self.masked_loss, mode=mode)

    def _sparse_head(self, task_model):
        return MLM_HEADS.get(task_model.config.model_type) if self.sparse_head else None

    def masked_loss(self, model, input_ids, positions, targets, smoothing: float = 0.0):
        """Mean loss and cross-entropy at the masked positions (targets IGNORE: padding rows), and per row: hit,
        scored. The loss has label smoothing `smoothing` over the real vocabulary."""
        from transferlab.objectives.lm_loss import masked_padding
        from transferlab.objectives.metrics import top1, unwrap
        from transferlab.objectives.smoothing import smoothed_cross_entropy, vocabulary_columns

        task_model = unwrap(model)
        head = self._sparse_head(task_model)
        if head is None:
            logits = model(input_ids=input_ids).logits.flatten(0, 1).index_select(0, positions)
        else:
            hidden = task_model.base_model(input_ids=input_ids).last_hidden_state
            logits = head(task_model)(hidden.flatten(0, 1).index_select(0, positions))
        logits = masked_padding(logits.float(), self.vocab)
        scored = targets != IGNORE
        loss, nll = smoothed_cross_entropy(logits, targets, smoothing, vocabulary_columns(logits, self.vocab))
        return loss, nll, (top1(logits) == targets).float(), scored.float()

    def step(self, model, batch, stage: str):
        positions = batch["masked_positions"]
        if positions.numel() == 0:  # a batch where nothing was drawn: no loss, nothing to learn
            return sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
        targets = (
            batch["masked_labels"] if "masked_labels" in batch else batch["labels"].flatten().index_select(0, positions)
        )
        from transferlab.objectives.smoothing import smoothing

        loss, nll, hits, scored = self.loss(model, batch["input_ids"], positions, targets, smoothing(self.cfg, stage))
        metrics = self.metrics[stage]
        metrics["acc"].update(hits, weight=scored)
        metrics["perplexity"].update(nll.detach(), weight=scored.sum())  # of the plain cross-entropy
        return loss
