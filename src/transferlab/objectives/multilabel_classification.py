"""Multi-label sequence classification: any number of labels per text (none included), one sigmoid per label.

Texts are encoded as classification encodes them (its prepare and infer, with their pair handling); the labels are
a set per row (objectives/multilabel_labels.py: a list cell, or a text cell split at data.label_separator; an empty
cell is a row with no label, not a missing value). Loss: binary cross-entropy with logits. A label is predicted when
its score is above objective.threshold; with objective.tune_threshold=true the threshold is picked on validation
(the best micro-F1 of a grid) at each validation, kept in the checkpoint and the export, never picked on test.
Metrics: f1_micro, f1_macro, precision_micro, recall_micro, exact_match; per train batch at the threshold in use,
and over whole val/test sets, with <run>/per_label.csv from the test set.
On new data (infer): pred_labels, the labels above the threshold, and pred_scores, every label's score.
"""

from dataclasses import dataclass

from transferlab.config.rules import ranged
from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective, model_inputs
from transferlab.objectives.classification import Classification
from transferlab.objectives.multilabel_labels import (
    as_lists,
    bit_columns,
    check_cells,
    check_seen,
    label_set,
    packed,
    unpacked,
    vocabulary,
)
from transferlab.objectives.smoothing import CrossEntropyConfig


@dataclass
class MultilabelConfig(CrossEntropyConfig):
    name: str = "multilabel_classification"
    threshold: float = ranged(0.5, gt=0.0, lt=1.0, hint="a score between 0 and 1, e.g. 0.5")
    tune_threshold: bool = False  # pick the threshold on validation (best micro-F1 of 0.05, 0.10 ... 0.95)


def _metrics(threshold: float):
    """Train metrics per batch (val and test are scored whole in `evaluate`) and the threshold in use, a buffer: the
    checkpoint that wins keeps the threshold tuned on its own validation."""
    import torch
    from torchmetrics import MetricCollection
    from torchmetrics.classification import (
        MultilabelExactMatch,
        MultilabelF1Score,
        MultilabelPrecision,
        MultilabelRecall,
    )

    from transferlab.objectives.metrics import per_stage

    class Thresholded(per_stage):
        def __init__(self, n: int):
            super().__init__(lambda: torch.nn.ModuleDict({}))
            kw = {"num_labels": n, "validate_args": False}  # preds come as 0/1 already
            self.train_metrics = MetricCollection(
                {
                    "f1_micro": MultilabelF1Score(average="micro", **kw),
                    "f1_macro": MultilabelF1Score(average="macro", **kw),
                    "precision_micro": MultilabelPrecision(average="micro", **kw),
                    "recall_micro": MultilabelRecall(average="micro", **kw),
                    "exact_match": MultilabelExactMatch(**kw),
                }
            )
            self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float64))

    return Thresholded


class MultilabelClassification(Classification):
    name = "multilabel_classification"
    Config = MultilabelConfig
    stratify = "label"  # by each row's rarest label (data/splits.py), so a cut train keeps (nearly) every label
    optional = ("label",)  # an empty label cell: none of the labels applies
    reads = ("label_separator",)
    outputs = ("pred_labels", "pred_scores")
    problem_type = "multi_label_classification"
    scores = ("f1_micro", "f1_macro", "precision_micro", "recall_micro", "exact_match")

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        if cfg.data.get("label_separator") == "":
            raise TransferlabError(
                "data.label_separator='' splits nothing; set the text between labels (e.g. ';'), or null for list cells"
            )

    @classmethod
    def reshape(cls, split, data_cfg):
        return as_lists(split, data_cfg)

    @classmethod
    def check_rows(cls, split, name_row) -> None:
        check_cells(split["label"][:], name_row)

    @classmethod
    def check_splits(cls, splits: dict, cfg) -> None:
        check_seen(splits, cfg.data)

    def __init__(self, cfg, data_cfg, tokenizer, train):
        Objective.__init__(self, cfg, data_cfg, tokenizer, train)  # not classification's: its labels are one a row
        self.label2id = vocabulary(train)
        self.names = list(self.label2id)
        self.columns = bit_columns(len(self.names))
        self.metrics = _metrics(cfg.threshold)(len(self.names))
        self._scored = None  # (batch, scores, targets) of the eval batch step just scored, for predict

    def stored_labels(self) -> tuple:
        label2id, columns = self.label2id, self.columns

        def cells(values) -> dict:
            sets = [packed([label2id[label] for label in label_set(v)], columns) for v in values]
            return {c: [s[c] for s in sets] for c in columns}

        return cells, columns, {"labels": label2id, "separator": self.data_cfg.get("label_separator")}

    def collator(self, stage: str):
        from transferlab.objectives.sequence_inputs import input_collator

        return input_collator(self.tokenizer, self.data_cfg, columns=tuple(self.columns), keep_ids=stage != "train")

    def model_config(self) -> dict:
        return {**super().model_config(), "problem_type": self.problem_type}

    @property
    def threshold(self) -> float:
        return float(self.metrics.threshold)

    def _score(self, model, batch) -> tuple:
        logits = model(**model_inputs(batch)).logits.float()
        return logits, unpacked(batch, self.columns, len(self.names))

    def step(self, model, batch, stage: str):
        from torch.nn.functional import binary_cross_entropy_with_logits

        from transferlab.objectives.smoothing import smoothed_targets, smoothing

        logits, targets = self._score(model, batch)
        loss = binary_cross_entropy_with_logits(logits, smoothed_targets(targets, smoothing(self.cfg, stage)))
        scores = logits.detach().sigmoid()
        if stage == "train":
            self.metrics["train"].update((scores > self.metrics.threshold).long(), targets.long())
        else:
            self._scored = (batch, scores, targets)
        return loss

    def predict(self, model, batch) -> list:
        """Per row: every label's score and the ids of its gold labels (the scores of the step just taken)."""
        scored, scores, targets = self._scored if self._scored is not None else (None, None, None)
        if scored is not batch:
            logits, targets = self._score(model, batch)
            scores = logits.sigmoid()
        self._scored = None
        gold = [[j for j, on in enumerate(row) if on] for row in targets.bool().tolist()]
        return [{"id": i, "scores": s, "gold": g} for i, s, g in zip(batch["ids"], scores.tolist(), gold)]

    def _tensors(self, predictions: list) -> tuple:
        import torch

        scores = torch.tensor([r["scores"] for r in predictions], dtype=torch.float32)
        targets = torch.zeros_like(scores)
        for k, r in enumerate(predictions):
            targets[k, r["gold"]] = 1.0
        return scores, targets

    def evaluate(self, stage: str, predictions: list) -> dict:
        from transferlab.objectives.multilabel_scores import metrics, tuned

        scores, targets = self._tensors(predictions)
        if stage == "val" and self.cfg.tune_threshold:  # validation only: test never moves it
            self.metrics.threshold.fill_(tuned(scores, targets, self.cfg.threshold))
        return {**metrics(scores, targets, self.threshold), "threshold": self.threshold}

    def artifacts(self, stage: str, predictions: list) -> dict:
        """<run>/per_label.csv: precision, recall, F1 and support of each label on the test set."""
        if stage != "test" or not predictions:
            return {}
        from transferlab.objectives.multilabel_scores import per_label

        return {"per_label.csv": per_label(*self._tensors(predictions), self.threshold, self.names)}

    def export_config(self) -> dict:
        return {**super().export_config(), "threshold": self.threshold}  # the tuned one: what predict applies

    @classmethod
    def decoded(cls, cfg, config, logits, options) -> list:
        """pred_labels: the labels scored above cfg.threshold (the export's); pred_scores: {label: score}."""
        return [
            {
                "pred_labels": [config.id2label[j] for j, s in enumerate(row) if s > cfg.threshold],
                "pred_scores": {config.id2label[j]: round(s, 6) for j, s in enumerate(row)},
            }
            for row in logits.sigmoid().tolist()
        ]
