"""Extractive QA with unanswerable questions (SQuAD v2): the answer-or-nothing decision and its scores.

A question's null score is the smallest, over its windows, of the first token's start + end logits (where every
window without the answer is trained to point); its best span is the best over its windows (objectives/windows.py).
It is predicted unanswerable ("") when null score - best span score > the null threshold, as HF's SQuAD v2
post-processing decides. Scores are those of SQuAD v2's official evaluation script: answers normalised (lower case,
punctuation and articles removed, whitespace collapsed), an empty gold matched only by an empty prediction, the best
over a question's gold answers. Pure Python, so it is tested on fixed numbers.
"""

import math
import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def null_of(windows_nulls) -> dict:
    """example -> its null score: the smallest over its windows' (example, null score)."""
    nulls = {}
    for example, null in windows_nulls:
        nulls[example] = min(null, nulls.get(example, math.inf))
    return nulls


def null_margin(null: float, span) -> float:
    """How much more the null score is than the best span's (inf where no window proposes a span)."""
    return math.inf if span is None else null - span[0]


def answerable(margin: float, threshold: float) -> bool:
    """The span is the prediction unless the null score beats it by more than the threshold."""
    return not margin > threshold


def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _exact(gold: str, pred: str) -> float:
    return float(normalize(gold) == normalize(pred))


def _f1(gold: str, pred: str) -> float:
    gold_tokens, pred_tokens = normalize(gold).split(), normalize(pred).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def scores(golds: list, pred: str) -> tuple[float, float]:
    """(exact, f1) of a prediction against a question's gold answer texts; no gold answer (or none left after
    normalising): only an empty prediction scores."""
    golds = [g for g in golds if normalize(g)] or [""]
    return max(_exact(g, pred) for g in golds), max(_f1(g, pred) for g in golds)


def v2_metrics(questions: list) -> dict:
    """Fractions over (gold answer texts, prediction) pairs: exact_match and f1 over all questions, has_ans_f1 over
    the answerable ones and no_ans_acc (predicted empty) over the unanswerable ones, each where there are some."""
    exact, f1, has_ans, no_ans = [], [], [], []
    for golds, pred in questions:
        e, f = scores(golds, pred)
        exact.append(e)
        f1.append(f)
        if golds:
            has_ans.append(f)
        else:
            no_ans.append(float(pred == ""))
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    out = {"exact_match": mean(exact), "f1": mean(f1)}
    if has_ans:
        out["has_ans_f1"] = mean(has_ans)
    if no_ans:
        out["no_ans_acc"] = mean(no_ans)
    return out


def best_threshold(questions: list) -> float:
    """The null threshold that maximises the summed F1 over (gold answer texts, span text, null margin) triples (the
    official script's search): questions switch from "" to their span in increasing margin, and the threshold is
    the margin of the last one switched at the best total. Where predicting "" for all is best, a threshold below
    every margin (the script returns 0.0 there, which need not be)."""
    finite = sorted((q for q in questions if math.isfinite(q[2])), key=lambda q: q[2])
    total = sum(scores(golds, "")[1] for golds, _, _ in questions)
    best_total, best = total, (finite[0][2] - 1.0 if finite else 0.0)
    for golds, span, margin in finite:
        total += scores(golds, span)[1] - scores(golds, "")[1]
        if total > best_total:
            best_total, best = total, margin
    return best
