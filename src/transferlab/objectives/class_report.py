"""A labelled eval set's per-class report, from its confusion matrix (rows: true label, columns: predicted): the
per-class precision/recall/F1/support table (sklearn's classification_report numbers, a class never predicted or
never present scoring 0) and the matrix drawn as a PNG. Both name the split they were scored on."""

import csv
import io

import numpy as np


def per_class(confusion: np.ndarray, names: list) -> list:
    """[{label, precision, recall, f1, support}] per class, in the order of `names`."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits, predicted, support = np.diag(confusion), confusion.sum(0), confusion.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, hits / np.maximum(support, 1), 0.0)
        both = precision + recall
        f1 = np.where(both > 0, 2 * precision * recall / np.where(both > 0, both, 1), 0.0)
    return [
        {"label": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support)
    ]


def per_class_csv(confusion: np.ndarray, names: list, split: str) -> str:
    """per_class.csv: one row per class, with the split it was scored on."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["split", "label", "precision", "recall", "f1", "support"])
    writer.writeheader()
    for row in per_class(confusion, names):
        writer.writerow({"split": split, **{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}})
    return out.getvalue()


def confusion_png(confusion: np.ndarray, names: list, split: str) -> bytes:
    """The matrix as a heat map with its counts (up to 30 classes), titled with its split and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.int64)
    n = len(names)
    side = min(4 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), [str(x) for x in names], rotation=60, ha="right", fontsize="small")
    ax.set_yticks(range(n), [str(x) for x in names], fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        dark = confusion.max() / 2 if confusion.size else 0
        for i in range(n):
            for j in range(n):
                color = "white" if confusion[i, j] > dark else "black"
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", color=color, fontsize="x-small")
    ax.set_title(f"confusion matrix: {split} split ({int(confusion.sum()):,} examples)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
