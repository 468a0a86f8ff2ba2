"""Sequence classification: accuracy and macro-F1; labels may be strings (mapped in the data step)."""

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from transferlab.objectives.metrics import per_stage


class PadCollator:
    """Dynamic padding to the batch's longest sequence (a multiple of `multiple_of`, 8 helps GPU tensor cores)."""

    def __init__(self, pad_id: int, multiple_of: int = 1):
        self.pad_id, self.multiple_of = pad_id, multiple_of

    def __call__(self, examples):
        longest = max(len(ids) for ids, _ in examples)
        longest = -(-longest // self.multiple_of) * self.multiple_of
        input_ids = torch.full((len(examples), longest), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
        for row, (ids, _) in enumerate(examples):
            input_ids[row, : len(ids)] = torch.as_tensor(ids)
            attention_mask[row, : len(ids)] = 1
        labels = torch.tensor([label for _, label in examples], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class Classification(nn.Module):
    auto_class = "AutoModelForSequenceClassification"
    packed = False  # one example per row, truncated to data.max_seq_len, padded per batch
    monitor = ("val/acc", "max")

    def __init__(self, cfg, tokenizer, label2id: dict):
        super().__init__()
        self.label2id = label2id
        self.collator = PadCollator(tokenizer.pad_token_id)
        n = len(label2id)
        self.metrics = per_stage(
            lambda: MetricCollection(
                # validate_args=False: the data step already checked the labels; the checks cost a host sync per update
                {"acc": MulticlassAccuracy(n, average="micro", validate_args=False),
                 "f1_macro": MulticlassF1Score(n, average="macro", validate_args=False)}
            )
        )

    def model_config(self) -> dict:
        return {
            "num_labels": len(self.label2id),
            "id2label": {i: label for label, i in self.label2id.items()},
            "label2id": dict(self.label2id),
        }

    def compile_targets(self, model) -> list:
        return [model]

    def step(self, model, batch, stage: str) -> torch.Tensor:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss = nn.functional.cross_entropy(out.logits.float(), batch["labels"])
        self.metrics[stage].update(out.logits.argmax(-1), batch["labels"])
        return loss
