"""Sequence classification: accuracy and macro-F1; labels may be strings, mapped by a vocabulary taken from train.
On new data (infer): each row's most likely label (the argmax `step` scores) and its probability, or the top k."""

from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective, model_inputs


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


def encode_texts(tokenizer, texts: list, max_len: int) -> list:
    """The input ids of each text, as training and inference read it."""
    return tokenizer(texts, truncation=True, max_length=max_len, verbose=False)["input_ids"]


class Classification(Objective):
    name = "classification"
    Config = ClassificationConfig
    fields = {"text": "text_column", "label": "label_column"}
    stratify = "label"
    auto_class = "AutoModelForSequenceClassification"
    pipeline_tag = "text-classification"
    reads_features = True
    outputs = ("pred_label", "pred_score", "pred_top_k")

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

    def stored_labels(self) -> tuple:
        """How prepare stores a batch's label cells: (cells -> {column: a value per row}, those scalar columns, what
        decides them, for the cache key). A subclass with other targets (multi-label) overrides it."""
        label2id = self.label2id
        return (lambda cells: {"labels": [label2id[label_text(v)] for v in cells]}), ["labels"], label2id

    def prepare(self, split: str, dataset):
        from transferlab.data.prepared import Rows

        tokenizer, max_len = self.tokenizer, self.data_cfg.max_seq_len
        labels, columns, label_settings = self.stored_labels()

        def encode(batch):
            return {"input_ids": encode_texts(tokenizer, batch["text"], max_len), **labels(batch["label"])}

        settings = {"objective": self.name, "max_len": max_len, "labels": label_settings, "v": 2}
        return Rows.prepare(dataset, encode, tokenizer, settings, columns, self.data_cfg.num_proc)

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

        out = model(**model_inputs(batch))
        loss = cross_entropy(out.logits.float(), batch["labels"])
        self.metrics[stage].update(out.logits.argmax(-1), batch["labels"])
        return loss

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options) -> list:
        """pred_label and its probability pred_score; with options.top_k > 1 also pred_top_k, [{label, score}]."""
        from transferlab.objectives.collate import PadCollator, by_length, on_device

        collate = PadCollator(tokenizer.pad_token_id, columns=())

        def run(batch: list, first: int) -> list:
            ids = encode_texts(tokenizer, [r["text"] for r in batch], options.max_seq_len)
            logits = model(**model_inputs(on_device(collate([{"input_ids": i} for i in ids]), model))).logits
            return cls.decode(cfg, logits.float(), model.config.id2label, options)

        return by_length(rows, lambda r: len(r["text"]), run, options)

    @classmethod
    def decode(cls, cfg, logits, names: dict, options) -> list:
        """infer's output columns of each row, from the model's logits; `names`: label id -> label."""
        k = options.top_k
        best = logits.softmax(-1).topk(min(k, logits.size(-1)), dim=-1)
        out = []
        for p, i in zip(best.values.tolist(), best.indices.tolist()):
            row = {"pred_label": names[i[0]], "pred_score": round(p[0], 6)}
            if k > 1:
                row["pred_top_k"] = [{"label": names[j], "score": round(q, 6)} for q, j in zip(p, i)]
            out.append(row)
        return out
