"""Extractive question answering (SQuAD v1.1, and v2 with unanswerable questions): the answer is a span of the
context, predicted as its start and end tokens, or nothing.

A question and its context are tokenized as a pair. A context too long for max_seq_len is cut into overlapping
windows (doc_stride tokens shared by neighbours), each a training row whose targets are the answer's first and last
tokens, or the first token (position 0) when the window does not hold the whole answer. Windows that hold only part
of it (the answer crosses their edge) are counted and reported as data/<split>_windows_cut. At evaluation every
window proposes its n-best spans (objectives/spans.py); the best one over an example's windows is mapped back to the
context's characters through the tokenizer's offsets and scored with SQuAD's exact match and F1 (torchmetrics), as
fractions. Answers are written to <run>/predictions/<split>.jsonl. New rows (infer) are windowed, searched and
mapped back by the same functions, with the run's max_seq_len, doc_stride, n_best and max_answer_len.

Questions with no answer (objective.allow_no_answer; null: allowed when a split holds one) point at the first token
in every window. Their runs decide answer-or-nothing by the null threshold and score as SQuAD v2's script does
(objectives/qa_postprocess.py); objective.tune_null_threshold=true picks the threshold on validation, kept with the
checkpoint it was tuned for and in the export's config, which predict reads.
"""

from dataclasses import dataclass
from typing import Optional

from transferlab.errors import TransferlabError
from transferlab.objectives.base import SPLIT_OF_STAGE, Objective, model_inputs, needs_fast
from transferlab.objectives.qa_postprocess import answerable, best_threshold, null_margin, null_of, v2_metrics
from transferlab.objectives.qa_rows import check_answers, check_no_answers, flat_answers
from transferlab.objectives.smoothing import CrossEntropyConfig
from transferlab.objectives.windows import answer, best_of, check_windows, collator, window_spans, windows


@dataclass
class ExtractiveQAConfig(CrossEntropyConfig):
    name: str = "extractive_qa"
    max_seq_len: int = (
        128  # tokens of a window: question, context part and specials (the YAML makes it data.max_seq_len)
    )
    doc_stride: int = 32  # tokens two neighbouring windows of one context share
    max_answer_len: int = 30  # tokens: longer spans are never predicted
    n_best: int = 20  # start and end candidates per window
    # questions with no answer (answers {"text": [], "answer_start": []}), SQuAD v2: null = allowed when a split holds
    # one; false refuses them
    allow_no_answer: Optional[bool] = None
    null_threshold: float = 0.0  # predict no answer when null score - best span score > this (SQuAD v2)
    tune_null_threshold: bool = False  # pick null_threshold on validation (never test); saved in the export


class ExtractiveQA(Objective):
    name = "extractive_qa"
    Config = ExtractiveQAConfig
    fields = {"question": "question_column", "context": "text_column", "answers": "label_column"}
    columns = {"text_column": "context", "label_column": "answers", "question_column": "question"}
    auto_class = "AutoModelForQuestionAnswering"
    pipeline_tag = "question-answering"
    outputs = ("pred_answer", "pred_score", "pred_start")

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        if cfg.objective.get("tune_null_threshold") and cfg.objective.get("allow_no_answer") is False:
            raise TransferlabError(
                "objective.tune_null_threshold=true tunes when to predict no answer, but "
                "objective.allow_no_answer=false; set one of them the other way"
            )

    @classmethod
    def reshape(cls, split, data_cfg):
        return flat_answers(split, data_cfg)

    @classmethod
    def check_rows(cls, split, name_row) -> None:
        check_answers(split, name_row)

    @classmethod
    def check_splits(cls, splits: dict, cfg) -> None:
        check_no_answers(splits, cfg)

    @classmethod
    def texts(cls, split, batch_size: int = 1000):
        for i in range(0, len(split), batch_size):
            rows = split[i : i + batch_size]
            yield rows["question"] + rows["context"]

    def __init__(self, cfg, data_cfg, tokenizer, train):
        super().__init__(cfg, data_cfg, tokenizer, train)
        needs_fast(tokenizer, self.name, "its offsets map answers to tokens and back")
        if cfg.doc_stride < 0:
            raise TransferlabError(f"objective.doc_stride={cfg.doc_stride}: give 0 or more tokens")
        # no per-batch metric: answers are scored per example, over its windows
        self.raw = {}  # split -> its raw rows, whose contexts and answers the evaluation reads
        if cfg.get("tune_null_threshold"):
            from transferlab.objectives.tuned import TunedValue

            # tuned at each validation, saved with each checkpoint: the test of the best one uses its own
            self.metrics.null_threshold = TunedValue(cfg.null_threshold)

    def prepare(self, split: str, dataset):
        from transferlab.data.prepared import Rows
        from transferlab.objectives.spans import answer_tokens, context_offsets

        tokenizer, cfg, length, stride = self.tokenizer, self.cfg, self.cfg.max_seq_len, self.cfg.doc_stride
        types = "token_type_ids" in tokenizer.model_input_names
        room = length - tokenizer.num_special_tokens_to_add(pair=True)

        def encode(batch, indices):
            check_windows(f"data.{split}", batch, tokenizer, room, length, stride)
            enc = windows(tokenizer, batch, cfg, types)
            out = {k: [] for k in ("input_ids", "start", "end", "cut", "example", "offset_start", "offset_end")}
            for w, ids in enumerate(enc["input_ids"]):
                row = enc["overflow_to_sample_mapping"][w]
                starts, ends = context_offsets(enc["offset_mapping"][w], enc.sequence_ids(w))
                answers = batch["answers"][row]
                start, end, cut = 0, 0, False  # no answer: the first token, as in windows without it
                if answers["text"]:
                    first = answers["answer_start"][0]
                    start, end, cut = answer_tokens(starts, ends, first, first + len(answers["text"][0]))
                for key, value in zip(out, (ids, start, end, int(cut), indices[row], starts, ends)):
                    out[key].append(value)
            if types:
                out["token_type_ids"] = enc["token_type_ids"]
            return out

        settings = {"objective": self.name, "max_len": length, "stride": stride, "types": types, "v": 1}
        aligned = ("offset_start", "offset_end") + (("token_type_ids",) if types else ())
        rows = Rows.prepare(
            dataset,
            encode,
            tokenizer,
            settings,
            ["start", "end", "cut", "example"],
            self.data_cfg.num_proc,
            aligned=aligned,
            indices=True,
        )
        self.raw[split] = dataset
        self.stats[f"{split}_windows"] = len(rows)
        self.stats[f"{split}_windows_cut"] = int(rows.columns["cut"].sum())
        return rows

    def collator(self, stage: str):
        evaluating = stage != "train"
        return collator(self.tokenizer, ("start", "end", "example"), keep_ids=evaluating, offsets=evaluating)

    def step(self, model, batch, stage: str):
        from transferlab.objectives.smoothing import smoothed_cross_entropy, smoothing

        out = model(**model_inputs(batch))
        # smoothing spreads over the window's tokens, not over the batch's padding
        e, tokens = smoothing(self.cfg, stage), batch["attention_mask"].bool()
        return (
            smoothed_cross_entropy(out.start_logits.float(), batch["start"], e, tokens)[0]
            + smoothed_cross_entropy(out.end_logits.float(), batch["end"], e, tokens)[0]
        ) / 2

    def predict(self, model, batch) -> list:
        """Per window: its example, its n-best [score, char_start, char_end] in that example's context and its null
        score."""
        (spans, nulls), examples = window_spans(model, batch, self.cfg), batch["example"].tolist()
        return [
            {"id": w, "example": e, "spans": s, "null": n} for w, e, s, n in zip(batch["ids"], examples, spans, nulls)
        ]

    def _answers(self, stage: str, predictions: list) -> list:
        """Per example, in order: (example, its raw row, the best span over its windows or None, its null margin)."""
        best = best_of((r["example"], r["spans"]) for r in predictions)
        nulls = null_of((r["example"], r.get("null", 0.0)) for r in predictions)
        raw = self.raw[SPLIT_OF_STAGE[stage]]
        examples = sorted(best)
        rows = raw.select(examples) if len(examples) != len(raw) else raw
        return [(e, row, best[e], null_margin(nulls[e], best[e])) for e, row in zip(examples, rows)]

    def _threshold(self, stage: str, answers: list) -> float:
        """The null threshold: tuned on validation where asked (kept for test and the export), else the config's."""
        tuned = getattr(self.metrics, "null_threshold", None)
        if tuned is not None and stage == "val":
            tuned.value = best_threshold(
                [(row["answers"]["text"], answer(row["context"], span)[0], m) for _, row, span, m in answers]
            )
        if tuned is not None:
            self.cfg.null_threshold = tuned.value  # what the export's config records, for predict
        return self.cfg.null_threshold

    def _text(self, row, span, margin: float) -> str:
        """The prediction: the span's text, or "" where the null score beats it by more than the threshold."""
        v2 = self.cfg.get("allow_no_answer")
        return "" if v2 and not answerable(margin, self.cfg.null_threshold) else answer(row["context"], span)[0]

    def evaluate(self, stage: str, predictions: list) -> dict:
        from torchmetrics.functional.text import squad

        answers = self._answers(stage, predictions)
        if self.cfg.get("allow_no_answer"):
            threshold = self._threshold(stage, answers)
            questions = [(row["answers"]["text"], self._text(row, span, m)) for _, row, span, m in answers]
            return {**v2_metrics(questions), "null_threshold": threshold}
        preds = [{"id": str(e), "prediction_text": answer(row["context"], span)[0]} for e, row, span, _ in answers]
        target = [{"id": str(e), "answers": row["answers"]} for e, row, _, _ in answers]
        scores = squad(preds, target)
        return {"exact_match": float(scores["exact_match"]) / 100, "f1": float(scores["f1"]) / 100}

    def written(self, stage: str, predictions: list) -> list:
        rows = []
        for e, row, span, margin in self._answers(stage, predictions):
            text = self._text(row, span, margin)
            score = answer(row["context"], span)[1] if text else None  # no answer: no span's score
            out = {"example": e, "question": row["question"], "context": row["context"], "prediction": text}
            rows.append({**out, "score": score, "answers": row["answers"]["text"]})
        return rows

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options) -> list:
        """pred_answer (a span of the context, or "" where no window proposes one or, with allow_no_answer, the null
        score beats the best span by more than null_threshold), its score and pred_start, its first character in the
        context."""
        from transferlab.objectives.collate import by_length, on_device
        from transferlab.objectives.spans import context_offsets

        types = "token_type_ids" in tokenizer.model_input_names
        room = cfg.max_seq_len - tokenizer.num_special_tokens_to_add(pair=True)
        collate = collator(tokenizer, ("example",), keep_ids=False, offsets=True)

        def run(batch: list, first: int) -> list:
            columns = {"question": [r["question"] for r in batch], "context": [r["context"] for r in batch]}
            check_windows("input", columns, tokenizer, room, cfg.max_seq_len, cfg.doc_stride)
            enc, items = windows(tokenizer, columns, cfg, types), []
            for w, ids in enumerate(enc["input_ids"]):
                starts, ends = context_offsets(enc["offset_mapping"][w], enc.sequence_ids(w))
                item = {"input_ids": ids, "example": enc["overflow_to_sample_mapping"][w]}
                item.update(
                    offset_start=starts,
                    offset_end=ends,
                    **({"token_type_ids": enc["token_type_ids"][w]} if types else {}),
                )
                items.append(item)
            inputs = on_device(collate(items), model)
            (spans, nulls), examples = window_spans(model, inputs, cfg), inputs["example"].tolist()
            best, null = best_of(zip(examples, spans)), null_of(zip(examples, nulls))
            out = []
            for i, row in enumerate(batch):
                span = best[i]
                if cfg.get("allow_no_answer") and not answerable(null_margin(null[i], span), cfg.null_threshold):
                    span = None  # the null score beats the best span: no answer
                text, score = answer(row["context"], span)
                out.append({"pred_answer": text, "pred_score": score, "pred_start": span[1] if span else None})
            return out

        return by_length(rows, lambda r: len(r["question"]) + len(r["context"]), run, options)
