"""Metric pieces shared by the LM objectives."""

import torch
from torchmetrics import MeanMetric


class Perplexity(MeanMetric):
    """exp of the token-weighted mean cross-entropy: update(loss, weight=number_of_tokens)."""

    def compute(self) -> torch.Tensor:
        return torch.exp(super().compute())


class per_stage(torch.nn.Module):
    """Separate metric objects for train, val and test, so no state leaks between stages: metrics[stage]."""

    def __init__(self, make):
        super().__init__()
        self.train_metrics, self.val_metrics, self.test_metrics = make(), make(), make()

    def __getitem__(self, stage: str):
        return getattr(self, f"{stage}_metrics")


def unwrap(model):
    """The transformers model under a peft wrapper (adapters stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
