"""Scores of generated texts against one reference each (seq2seq, sft), as fractions like every transferlab metric
(sacrebleu prints BLEU and chrF x100).

- bleu, chrf: corpus BLEU and chrF (sacrebleu, its default 13a tokenisation);
- rouge1, rouge2, rougeL: F-measures of torchmetrics' rouge_score (lowercased words and digits), averaged over texts;
- rougeLsum: summary-level ROUGE-L (the union LCS of each reference sentence over the prediction's sentences), with
  sentences split at newlines, as Google's rouge_score package splits them: torchmetrics' own split needs nltk's punkt
  data, which it downloads. A text without a newline is one sentence, so there rougeLsum equals rougeL;
- exact_match: after whitespace normalisation;
- distinct_1, distinct_2: distinct n-grams over all outputs / all their n-grams (whitespace tokens, as written);
- repeat_rate: the fraction of outputs in which some 3-gram of whitespace tokens occurs twice (a looping generation).
"""


def normalized(text: str) -> str:
    return " ".join(text.split())


def ngrams(tokens: list, n: int) -> list:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct(texts: list, n: int) -> float:
    """Distinct n-grams over all texts / all their n-grams; 0 where the texts hold no n-gram."""
    grams = [g for text in texts for g in ngrams(text.split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeat_rate(texts: list, n: int = 3) -> float:
    """The fraction of texts in which an n-gram occurs more than once."""
    repeated = [len(set(g)) < len(g) for g in (ngrams(text.split(), n) for text in texts)]
    return sum(repeated) / max(1, len(texts))


def rouge_lsum(predictions: list, references: list) -> float:
    """Mean rougeLsum F-measure, sentences split at newlines (blank lines dropped)."""
    from torchmetrics.functional.text.rouge import _normalize_and_tokenize_text, _rouge_lsum_score

    def sentences(text: str) -> list:
        return [_normalize_and_tokenize_text(line) for line in text.split("\n") if line.strip()]

    scores = [float(_rouge_lsum_score(sentences(p), sentences(r))["fmeasure"]) for p, r in zip(predictions, references)]
    return sum(scores) / max(1, len(scores))


def text_scores(predictions: list, references: list) -> dict:
    """{"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match", "distinct_1", "distinct_2",
    "repeat_rate"} of generated texts against one reference each."""
    import sacrebleu
    from torchmetrics.functional.text.rouge import rouge_score

    rouge = rouge_score(predictions, references, rouge_keys=("rouge1", "rouge2", "rougeL"))
    return {
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score / 100,
        "chrf": sacrebleu.corpus_chrf(predictions, [references]).score / 100,
        **{key: float(rouge[f"{key}_fmeasure"]) for key in ("rouge1", "rouge2", "rougeL")},
        "rougeLsum": rouge_lsum(predictions, references),
        "exact_match": sum(normalized(p) == normalized(r) for p, r in zip(predictions, references))
        / max(1, len(references)),
        "distinct_1": distinct(predictions, 1),
        "distinct_2": distinct(predictions, 2),
        "repeat_rate": repeat_rate(predictions),
    }
