"""Label smoothing, shared by every objective whose loss is a cross-entropy: one config field, one rule, one loss.

The rule: smoothing regularises training only. The train loss is (1 - e) x cross-entropy + e x the mean
cross-entropy against every class the target could be (torch's `label_smoothing`); val and test losses, perplexity
included, stay the plain cross-entropy, so runs with and without smoothing compare (and pick checkpoints) alike.
Module-level imports are light: the config is read before torch loads.
"""

from dataclasses import dataclass

from transferlab.config.rules import ranged
from transferlab.objectives.base import IGNORE


@dataclass
class CrossEntropyConfig:
    """The fields of every cross-entropy objective's Config (each extends it)."""

    label_smoothing: float = ranged(0.0, ge=0.0, lt=1.0, hint="e.g. 0.1; 0 is plain cross-entropy")


def smoothing(cfg, stage: str) -> float:
    """The smoothing a step's loss uses: the config's in training, 0 in val and test (a plain float: compile-safe). A
    run's config saved before the key existed has none: 0."""
    return float(cfg.get("label_smoothing", 0.0)) if stage == "train" else 0.0


def smoothed_cross_entropy(logits, targets, smoothing: float = 0.0, columns=None):
    """(loss, plain cross-entropy) of `logits` [N, C] against `targets` [N], means over the rows whose target is not
    IGNORE. `columns`, a bool mask ([C] or [N, C]), names the classes a row may take (None: all): the smoothing
    spreads over them only, so a padded vocabulary's -inf columns never make it infinite and a window's padding takes
    no share. Where the other columns are -inf, the loss is F.cross_entropy(label_smoothing=smoothing) over just these
    columns; the softmax is always the logits' own."""
    from torch.nn.functional import cross_entropy

    count = (targets != IGNORE).sum().clamp(min=1)
    nll = cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum") / count
    if not smoothing:
        return nll, nll
    logp = logits.log_softmax(-1)
    if columns is None:
        uniform = -logp.mean(-1)
    else:
        columns = columns.expand_as(logp)
        uniform = -logp.masked_fill(~columns, 0.0).sum(-1) / columns.sum(-1).clamp(min=1)
    uniform = uniform.masked_fill(targets == IGNORE, 0.0).sum() / count
    return (1.0 - smoothing) * nll + smoothing * uniform, nll


def vocabulary_columns(logits, vocab: int | None):
    """The [C] mask of a vocabulary's real token columns: those before `vocab` (model.vocab_multiple's padding
    after); None where nothing is padded."""
    import torch

    if vocab is None or vocab >= logits.size(-1):
        return None
    return torch.arange(logits.size(-1), device=logits.device) < vocab


def smoothed_targets(targets, smoothing: float):
    """Binary targets (multi-label BCE) smoothed towards 1/2: y (1 - e) + e / 2, the two-class case of the above."""
    return targets * (1.0 - smoothing) + 0.5 * smoothing if smoothing else targets
