"""T5's pre-training objective on unlabeled text: noised spans of a packed block are each replaced by a sentinel
(<extra_id_0>, <extra_id_1>, ...) in the encoder's input; the decoder's target lists each sentinel followed by the
span it stands for. Both end with the end token.

data.max_seq_len is the encoder's input length; the packed block is longer, by as much as the spans' removal
shortens it, and the target length follows (T5's arithmetic, `lengths` below), so every batch has the same shapes
and nothing is padded. Noise density and mean span length are the T5 paper's 0.15 and 3 by default. A batch's spans
are drawn from its own seed (data/buckets.py): the same in a worker, after a resume and at every validation.
"""

from dataclasses import dataclass

import numpy as np

from transferlab.config.rules import ranged
from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective
from transferlab.objectives.smoothing import CrossEntropyConfig


@dataclass
class SpanCorruptionConfig(CrossEntropyConfig):
    name: str = "span_corruption"
    noise_density: float = ranged(0.15, gt=0.0, lt=1.0)  # share of a block's tokens that are noised
    mean_noise_span_length: float = ranged(3.0, ge=1.0)


def counts(tokens: int, density: float, mean_span: float) -> tuple[int, int]:
    """(noised tokens, noised spans) of a block of `tokens` tokens: at least one of each, and one token kept."""
    noise = min(max(int(round(tokens * density)), 1), tokens - 1)
    return noise, max(1, int(round(noise / mean_span)))


def lengths(inputs_length: int, density: float, mean_span: float) -> tuple[int, int]:
    """(block length, target length) for an encoder input of inputs_length tokens: the longest block whose kept
    tokens, one sentinel per span and the end token fit in it."""

    def sizes(tokens: int) -> tuple[int, int]:
        noise, spans = counts(tokens, density, mean_span)
        return tokens - noise + spans + 1, noise + spans + 1

    tokens = inputs_length
    while sizes(tokens + 1)[0] <= inputs_length:
        tokens += 1
    return tokens, sizes(tokens)[1]


def noise_mask(length: int, noise: int, spans: int, rng) -> np.ndarray:
    """A random mask of `noise` True values in `spans` runs, kept and noised runs alternating, a kept run first."""

    def segments(n: int) -> np.ndarray:  # n items cut into `spans` non-empty runs
        cuts = np.sort(rng.choice(np.arange(1, n), spans - 1, replace=False)) if spans > 1 else np.zeros(0, int)
        return np.diff(np.concatenate([[0], cuts, [n]]))

    runs = np.stack([segments(length - noise), segments(noise)], axis=1).ravel()
    return np.repeat(np.tile([False, True], spans), runs)


def corrupt(block: np.ndarray, mask: np.ndarray, sentinels: np.ndarray, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of one block: the input keeps the un-noised tokens with a sentinel in place of each noised
    span; the target is each sentinel followed by its span."""
    starts = mask & ~np.concatenate([[False], mask[:-1]])
    sentinel = sentinels[np.cumsum(starts) - 1]
    inputs = np.where(starts, sentinel, block)[~mask | starts]
    pairs = np.stack([np.where(starts, sentinel, -1), block], axis=1)[mask].ravel()
    return np.append(inputs, eos), np.append(pairs[pairs >= 0], eos)


class SpanCorruptionCollator:
    def __init__(self, cfg, inputs_length: int, sentinels: np.ndarray, eos: int):
        self.block, self.targets = lengths(inputs_length, cfg.noise_density, cfg.mean_noise_span_length)
        self.noise, self.spans = counts(self.block, cfg.noise_density, cfg.mean_noise_span_length)
        self.sentinels, self.eos = sentinels, eos

    def __call__(self, examples):
        import torch

        seed = getattr(examples, "seed", None)
        rng = np.random.default_rng(seed)  # no seed: a direct call outside the sampler
        inputs, targets = zip(
            *(
                corrupt(e.numpy(), noise_mask(self.block, self.noise, self.spans, rng), self.sentinels, self.eos)
                for e in examples
            )
        )
        input_ids, labels = torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))
        # tokens: the corrupted inputs and the targets
        return {
            "input_ids": input_ids,
            "labels": labels,
            "n_rows": len(examples),
            "n_tokens": input_ids.numel() + labels.numel(),
        }


class SpanCorruption(Objective):
    name = "span_corruption"
    Config = SpanCorruptionConfig
    model_kinds = ("encoder-decoder",)
    auto_class = "AutoModelForSeq2SeqLM"
    pipeline_tag = "text2text-generation"
    streams = True

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import FiniteMean, Perplexity, per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.block, _ = lengths(data_cfg.max_seq_len, cfg.noise_density, cfg.mean_noise_span_length)
        _, spans = counts(self.block, cfg.noise_density, cfg.mean_noise_span_length)
        vocab = tokenizer.get_vocab()
        missing = [f"<extra_id_{i}>" for i in range(spans) if f"<extra_id_{i}>" not in vocab]
        if missing or tokenizer.eos_token_id is None:
            raise TransferlabError(
                f"objective=span_corruption needs {spans} sentinel tokens "
                f"(<extra_id_0> ... <extra_id_{spans - 1}>) and an end token "
                f"in the tokenizer; {'it lacks ' + missing[0] if missing else 'it has no eos_token'}: "
                "use tokenizer=train on a T5-style model (model=tiny_t5), or a T5 tokenizer"
            )
        self.sentinels = np.array([vocab[f"<extra_id_{i}>"] for i in range(spans)])
        self.metrics = per_stage(
            lambda: nn.ModuleDict({"acc": FiniteMean(), "span_acc": FiniteMean(), "perplexity": Perplexity()})
        )
        self.vocab = len(tokenizer)  # logit columns from here on are no tokens (model.vocab_multiple's padding)

    def prepare(self, split: str, dataset):
        from transferlab.data.packing import packed_blocks

        return packed_blocks(dataset, self.tokenizer, self.block, {"objective": "lm"}, self.data_cfg.num_proc)

    def collator(self, stage: str):
        return SpanCorruptionCollator(self.cfg, self.data_cfg.max_seq_len, self.sentinels, self.tokenizer.eos_token_id)

    def step(self, model, batch, stage: str):
        import torch

        from transferlab.objectives.lm_loss import masked_padding
        from transferlab.objectives.metrics import top1
        from transferlab.objectives.smoothing import smoothed_cross_entropy, smoothing, vocabulary_columns

        labels = batch["labels"]
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = masked_padding(
            model(input_ids=batch["input_ids"], decoder_input_ids=decoder_input_ids).logits.float(), self.vocab
        )
        e, columns = smoothing(self.cfg, stage), vocabulary_columns(logits, self.vocab)
        loss, nll = smoothed_cross_entropy(logits.flatten(0, 1), labels.flatten(), e, columns)
        right = (top1(logits) == labels).float()
        self.metrics[stage]["acc"].update(right)
        # the noised tokens alone: a sentinel or the end token is told by counting, not by reading the input
        told = torch.isin(labels, torch.as_tensor(self.sentinels).to(labels.device))
        spans = ~(told | (labels == self.tokenizer.eos_token_id))
        self.metrics[stage]["span_acc"].update(right[spans])
        self.metrics[stage]["perplexity"].update(nll.detach(), weight=labels.numel())  # of the plain cross-entropy
        return loss
