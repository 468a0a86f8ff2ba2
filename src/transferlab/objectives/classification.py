"""Sequence classification: accuracy and macro-F1; labels may be strings, mapped by a vocabulary taken from train."""

from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective


@dataclass
class ClassificationConfig:
    name: str = "classification"


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


class Classification(Objective):
    name = "classification"
    Config = ClassificationConfig
    fields = {"text": "text_column", "label": "label_column"}
    stratify = "label"
    auto_class = "AutoModelForSequenceClassification"
    pipeline_tag = "text-classification"
    reads_features = True

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
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

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
                }
            )
        )

    def prepare(self, split: str, dataset):
        from transferlab.data.prepared import Rows

        tokenizer, max_len, label2id = self.tokenizer, self.data_cfg.max_seq_len, self.label2id

        def encode(batch):
            ids = tokenizer(batch["text"], truncation=True, max_length=max_len, verbose=False)["input_ids"]
            return {"input_ids": ids, "labels": [label2id[label_text(v)] for v in batch["label"]]}

        settings = {"objective": self.name, "max_len": max_len, "labels": label2id, "v": 2}
        return Rows.prepare(dataset, encode, tokenizer, settings, ["labels"], self.data_cfg.num_proc)

    def collator(self, stage: str):
        from transferlab.objectives.collate import PadCollator

        return PadCollator(self.tokenizer.pad_token_id)

    def model_config(self) -> dict:
        return {
            "num_labels": len(self.label2id),
            "id2label": {i: label for label, i in self.label2id.items()},
            "label2id": dict(self.label2id),
        }

    def step(self, model, batch, stage: str):
        from torch.nn.functional import cross_entropy

        out = model(**self.model_inputs(batch))
        loss = cross_entropy(out.logits.float(), batch["labels"])
        self.metrics[stage].update(out.logits.argmax(-1), batch["labels"])
        return loss
