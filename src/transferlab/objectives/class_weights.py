"""objective.class_weights=balanced: each class's cross-entropy weighted by n_samples / (n_classes x its count) in
train (scikit-learn's "balanced"), so a rare class weighs in the loss as much as a common one.

The weights are computed once, from the train split's labels, and kept as a buffer in every checkpoint: testing a
checkpoint (transferlab-eval) uses the weights its run trained with, whatever the train split reads like then. They
weigh the val and test losses too (the loss the checkpoint is picked on); the metrics are unweighted.
"""

from collections import Counter

import torch

from transferlab.errors import TransferlabError


def balanced(label_ids: list, names: list) -> list:
    """One weight per class id (`names[i]` is class i): n_samples / (n_classes x count). A class with no train
    example has no such weight: refused (the label vocabulary is train's, so only a vocabulary from elsewhere can
    hold one)."""
    counts = Counter(label_ids)
    absent = [names[i] for i in range(len(names)) if not counts[i]]
    if absent:
        raise TransferlabError(
            f"objective.class_weights=balanced: label {absent[0]!r} has no example in train, so it has no weight; "
            "give train an example of every label, or set objective.class_weights=null"
        )
    return [len(label_ids) / (len(names) * counts[i]) for i in range(len(names))]


class ClassWeights(torch.nn.Module):
    """The weights as a buffer: saved with every checkpoint and moved to the model's device with the metrics."""

    def __init__(self, weights: list):
        super().__init__()
        self.register_buffer("weight", torch.tensor(weights, dtype=torch.float32))
