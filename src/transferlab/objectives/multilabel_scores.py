"""Multi-label scores of a whole eval set: the metrics at a threshold (torchmetrics), the threshold tuned on
validation, and the per-label table. A label is predicted when its sigmoid score is above the threshold (> t, as
torchmetrics and transferlab-predict decide)."""

import csv
import io

import torch

GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # the thresholds tune_threshold tries: 0.05, 0.10 ... 0.95


def metrics(scores: torch.Tensor, targets: torch.Tensor, threshold: float) -> dict:
    """f1_micro, f1_macro, precision_micro, recall_micro and exact_match (every label of a row right) of sigmoid
    `scores` [rows, labels] against 0/1 `targets`."""
    from torchmetrics.functional.classification import (
        multilabel_exact_match,
        multilabel_f1_score,
        multilabel_precision,
        multilabel_recall,
    )

    n, targets = scores.size(-1), targets.long()
    kw = {"num_labels": n, "threshold": threshold, "validate_args": False}
    return {
        "f1_micro": float(multilabel_f1_score(scores, targets, average="micro", **kw)),
        "f1_macro": float(multilabel_f1_score(scores, targets, average="macro", **kw)),
        "precision_micro": float(multilabel_precision(scores, targets, average="micro", **kw)),
        "recall_micro": float(multilabel_recall(scores, targets, average="micro", **kw)),
        "exact_match": float(multilabel_exact_match(scores, targets, **kw)),
    }


def tuned(scores: torch.Tensor, targets: torch.Tensor, start: float) -> float:
    """The threshold of GRID with the best micro-F1 on these (validation) scores; among equals, the one nearest
    `start` (the configured threshold), then the lower."""
    from torchmetrics.functional.classification import multilabel_f1_score

    def f1(t: float) -> float:
        return float(multilabel_f1_score(scores, targets.long(), scores.size(-1), t, "micro", validate_args=False))

    return max(GRID, key=lambda t: (round(f1(t), 12), -abs(t - start), -t))


def per_label(scores: torch.Tensor, targets: torch.Tensor, threshold: float, names: list) -> str:
    """CSV text: label, precision, recall, f1, support (rows holding it), one line per label in vocabulary order."""
    predicted, gold = scores > threshold, targets.bool()
    tp = (predicted & gold).sum(0).double()
    precision = tp / predicted.sum(0).clamp(min=1)
    recall = tp / gold.sum(0).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "precision", "recall", "f1", "support"])
    for i, name in enumerate(names):
        writer.writerow([name, *(f"{float(v[i]):.4f}" for v in (precision, recall, f1)), int(gold[:, i].sum())])
    return out.getvalue()
