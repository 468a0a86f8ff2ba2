"""Where a sequence classifier splits into frozen features and a head, for each family of HF classes (probe.py).

How an HF class turns hidden states into logits differs by family; each layout says where it splits, for the
poolings that class computes itself. A probe in such a layout *is* that class and exports as it; any other pooling
gets a linear head of its own (OwnLinear).
"""

from __future__ import annotations

import torch
from torch import nn

from transferlab.errors import TransferlabError

POOLINGS = ("cls", "mean", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """[B, T, H] -> [B, H]: the first token, the mean of the real tokens, or the last real token (right padding)."""
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    return hidden[torch.arange(hidden.size(0), device=hidden.device), mask.sum(1) - 1]


class ScoreOnLast:
    """GPT-2, Llama & co.: ``score`` (no bias) reads the last real token."""

    name, poolings, output, has_dense = "score_on_last", ("last",), "score", False

    @staticmethod
    def fits(model) -> bool:
        return isinstance(getattr(model, "score", None), nn.Linear)

    @staticmethod
    def dense(probe):
        return None

    @staticmethod
    def logits(probe, features):
        return probe.score(features)


class PredictionHead:
    """ModernBERT: ``classifier(drop(head(pooled)))``, pooled as ``config.classifier_pooling`` (cls or mean) says;
    ``head`` (dense, activation, norm) is the dense layer (after MLM pre-training, the MLM head's weights)."""

    name, poolings, output, has_dense = "prediction_head", ("cls", "mean"), "classifier", True

    @staticmethod
    def fits(model) -> bool:
        return hasattr(model.config, "classifier_pooling") and all(
            hasattr(model, n) for n in ("head", "drop", "classifier")
        )

    @staticmethod
    def dense(probe):
        return probe.head

    @staticmethod
    def logits(probe, features):
        return probe.classifier(probe.drop(probe.head(features) if probe.trains_dense else features))


class Pooler:
    """BERT & co.: ``classifier(dropout(pooler(hidden)))``; the pooler (dense + tanh) reads the first token."""

    name, poolings, output, has_dense = "pooler", ("cls",), "classifier", True

    @staticmethod
    def fits(model) -> bool:
        pooler = getattr(model.base_model, "pooler", None)
        return (
            hasattr(pooler, "dense")
            and isinstance(getattr(model, "classifier", None), nn.Linear)
            and hasattr(model, "dropout")
        )

    @staticmethod
    def dense(probe):
        return probe.base_model.pooler

    @staticmethod
    def logits(probe, features):
        if probe.trains_dense:
            pooler = probe.base_model.pooler
            features = pooler.activation(pooler.dense(features))
        return probe.classifier(probe.dropout(features))


class OwnLinear:
    """Any other pooling: a linear head of its own (exported as backbone + head, see save_pretrained)."""

    name, poolings, output, has_dense = "own_linear", POOLINGS, "probe_head", False

    @staticmethod
    def dense(probe):
        return None

    @staticmethod
    def logits(probe, features):
        return probe.probe_head(features)


LAYOUTS = (ScoreOnLast, PredictionHead, Pooler)


def default_pooling(config) -> str:
    """Decoders: the last token (the only one that has read the whole text). ModernBERT-style configs: their own
    classifier_pooling. Other encoders: the mean, since MLM never trains the first token to summarise a text and
    their pooler (if any) is untrained by MLM."""
    from transferlab.models.architectures import kind_of

    if kind_of(config.to_dict()) == "decoder":
        return "last"
    return getattr(config, "classifier_pooling", None) or "mean"


def choose_layout(model, pooling: str, head: str):
    for layout in LAYOUTS:
        if layout.fits(model) and pooling in layout.poolings:
            if head == "mlp" and not layout.has_dense:
                break
            return layout
    if head == "mlp":
        raise TransferlabError(
            f"freeze.head=mlp trains the dense layer {type(model).__name__} puts under its output layer "
            f"(BERT's pooler, ModernBERT's head), but with freeze.pooling={pooling} it has none; use freeze.head=linear"
        )
    return OwnLinear
