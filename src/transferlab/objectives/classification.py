"""Sequence classification of a text or a sentence pair (objectives/sequence_inputs.py): accuracy, macro-F1 and MCC,
and per eval set a per-class table and confusion matrix (artifacts); labels may be strings, mapped by a vocabulary
taken from train. On new data (infer): each row's most likely label (the argmax `step` scores) and its probability,
or the top k."""

from dataclasses import dataclass
from typing import Optional

from transferlab.config.rules import choice
from transferlab.errors import TransferlabError
from transferlab.objectives.base import SPLIT_OF_STAGE, Objective, model_inputs
from transferlab.objectives.sequence_inputs import PAIR_FIELDS
from transferlab.objectives.smoothing import CrossEntropyConfig


@dataclass
class ClassificationConfig(CrossEntropyConfig):
    name: str = "classification"
    # balanced: each class's loss weighted by n_samples / (n_classes x its train count) (objectives/class_weights.py)
    class_weights: Optional[str] = choice(None, "balanced")


def label_text(value) -> str:
    """A label as the user wrote it: a JSON true stays `true` (str() would give `True`), 2.0 stays `2.0`."""
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def label_vocabulary(train) -> dict:
    """label -> id from the train split (sorted, as strings)."""
    labels = sorted({label_text(v) for v in train["label"][:]})
    if len(labels) < 2:
        raise TransferlabError(f"objective=classification needs at least 2 labels in train; found {labels}")
    return {label: i for i, label in enumerate(labels)}


def encode_texts(tokenizer, texts: list, max_len: int) -> list:
    """The input ids of each single text (pairs: sequence_inputs.encode_inputs, which this delegates to)."""
    from transferlab.objectives.sequence_inputs import encode_inputs

    return encode_inputs(tokenizer, {"text": texts}, max_len)["input_ids"]


class Classification(Objective):
    name = "classification"
    Config = ClassificationConfig
    fields = {**PAIR_FIELDS, "label": "label_column"}
    stratify = "label"
    auto_class = "AutoModelForSequenceClassification"
    pipeline_tag = "text-classification"
    reads_features = True
    outputs = ("pred_label", "pred_score", "pred_top_k")
    scores = ("acc", "f1_macro", "mcc")

    @classmethod
    def check_splits(cls, splits: dict, cfg) -> None:
        """Every validation/test label must occur in train: the model cannot predict the others."""
        known = set(label_vocabulary(splits["train"]))
        for split in ("validation", "test"):
            unseen = sorted({label_text(v) for v in splits[split]["label"][:]} - known)
            if unseen:
                shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
                raise TransferlabError(
                    f"data.{split} has labels never seen in train: {shown}; the model cannot predict them "
                    "(fix the split, or raise data.train_fraction/max_train_samples so train covers every label)"
                )

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef

        from transferlab.objectives.metrics import per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.label2id = label_vocabulary(train)
        n = len(self.label2id)
        self.metrics = per_stage(
            lambda: MetricCollection(
                # validate_args=False: prepare already mapped the labels; the checks cost a host sync per update
                {
                    "acc": MulticlassAccuracy(n, average="micro", validate_args=False),
                    "f1_macro": MulticlassF1Score(n, average="macro", validate_args=False),
                    # its state is the confusion matrix, which artifacts() reports per class
                    "mcc": MulticlassMatthewsCorrCoef(n, validate_args=False),
                }
            )
        )
        self.class_weights = None
        if cfg.get("class_weights") == "balanced":
            from transferlab.objectives.class_weights import ClassWeights, balanced

            ids = [self.label2id[label_text(v)] for v in train["label"][:]]
            self.class_weights = ClassWeights(balanced(ids, list(self.label2id)))
            self.metrics.class_weights = self.class_weights  # a submodule: in every checkpoint, on the model's device

    def stored_labels(self) -> tuple:
        """How prepare stores a batch's label cells: (cells -> {column: a value per row}, those scalar columns, what
        decides them, for the cache key). A subclass with other targets (multi-label) overrides it."""
        label2id = self.label2id
        return (lambda cells: {"labels": [label2id[label_text(v)] for v in cells]}), ["labels"], label2id

    def prepare(self, split: str, dataset):
        from transferlab.data.prepared import Rows
        from transferlab.objectives.sequence_inputs import encode_inputs, segment_columns

        tokenizer, max_len = self.tokenizer, self.data_cfg.max_seq_len
        labels, columns, label_settings = self.stored_labels()

        def encode(batch):
            return {**encode_inputs(tokenizer, batch, max_len), **labels(batch["label"])}

        segments = segment_columns(tokenizer, self.data_cfg)
        settings = {"objective": self.name, "max_len": max_len, "labels": label_settings, "v": 2}
        if self.data_cfg.get("text_pair_column"):  # (the split's fingerprint names its columns too)
            settings["pair"] = self.data_cfg.text_pair_column
        return Rows.prepare(dataset, encode, tokenizer, settings, columns, self.data_cfg.num_proc, aligned=segments)

    def collator(self, stage: str):
        from transferlab.objectives.sequence_inputs import input_collator

        return input_collator(self.tokenizer, self.data_cfg)

    def model_config(self) -> dict:
        return {
            "num_labels": len(self.label2id),
            "id2label": {i: label for label, i in self.label2id.items()},
            "label2id": dict(self.label2id),
        }

    def step(self, model, batch, stage: str):
        from torch.nn.functional import cross_entropy

        from transferlab.objectives.smoothing import smoothing

        out = model(**model_inputs(batch))
        weight = None if self.class_weights is None else self.class_weights.weight.float()
        loss = cross_entropy(
            out.logits.float(), batch["labels"], weight=weight, label_smoothing=smoothing(self.cfg, stage)
        )
        self.metrics[stage].update(out.logits.argmax(-1), batch["labels"])
        return loss

    def artifacts(self, stage: str, predictions: list) -> dict:
        """The eval set's per_class.csv and confusion_matrix.png, from the MCC metric's confusion matrix (summed
        over ranks; every rank calls this)."""
        from transferlab.objectives.class_report import confusion_png, per_class_csv

        metric = self.metrics[stage]["mcc"]
        if stage == "train" or not metric.update_called:
            return {}
        with metric.sync_context():
            confusion = metric.confmat.detach().cpu().numpy()
        names, split = list(self.label2id), SPLIT_OF_STAGE[stage]
        return {
            "per_class.csv": per_class_csv(confusion, names, split).encode(),
            "confusion_matrix.png": confusion_png(confusion, names, split),
        }

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options) -> list:
        """pred_label and its probability pred_score; with options.top_k > 1 also pred_top_k, [{label, score}]."""
        from transferlab.objectives.collate import by_length
        from transferlab.objectives.sequence_inputs import infer_batch, input_length

        def run(batch: list, first: int) -> list:
            logits = model(**model_inputs(infer_batch(tokenizer, batch, options.max_seq_len, model))).logits
            return cls.decoded(cfg, model.config, logits.float(), options)

        return by_length(rows, input_length, run, options)

    @classmethod
    def baseline(cls, splits: dict, seed: int) -> dict:
        """TF-IDF + logistic regression: test/acc and test/f1_macro, as a run of this objective writes them."""
        from transferlab.objectives.baselines import logistic

        return logistic(splits, {s: [label_text(v) for v in ds["label"][:]] for s, ds in splits.items()}, seed)

    @classmethod
    def decoded(cls, cfg, config, logits, options) -> list:
        """infer's output columns of each row from a batch's logits; `cfg` is the objective's config as the export
        records it, `config` the export's HF config (its id2label)."""
        names, k = config.id2label, options.top_k
        best = logits.softmax(-1).topk(min(k, logits.size(-1)), dim=-1)
        out = []
        for p, i in zip(best.values.tolist(), best.indices.tolist()):
            row = {"pred_label": names[i[0]], "pred_score": round(p[0], 6)}
            if k > 1:
                row["pred_top_k"] = [{"label": names[j], "score": round(q, 6)} for q, j in zip(p, i)]
            out.append(row)
        return out
