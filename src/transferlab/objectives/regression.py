"""Sequence regression: one number per text (STS-B scores, ratings). The text goes in as classification reads it
(its encoding, so a text pair too, and its probe over frozen features); the head is one output, trained with MSE.

objective.standardize=true (the default) trains on the targets standardised by train's mean and std. The export's
HF config keeps both (`target_mean`, `target_std`; 0 and 1 when not standardised): the model outputs a standardised
value, and value = output * target_std + target_mean gives it back on the target's scale, as transferlab-predict's
`pred_value` and every metric (mse, rmse, pearson, spearman) have it."""

import math
from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.objectives.base import Objective, model_inputs
from transferlab.objectives.classification import Classification, label_text


@dataclass
class RegressionConfig:
    name: str = "regression"
    standardize: bool = True  # train on (target - mean) / std with train's mean and std; undone on every output


def target_value(cell) -> float | None:
    """A target cell as a number: a text cell as float() reads it (never a guess at a format), a JSON number as it is;
    None where that is no finite number (`abc`, `NA`, `inf`, a JSON true)."""
    if isinstance(cell, bool):
        return None
    try:
        value = float(cell) if isinstance(cell, (str, int, float)) else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def target_scale(values: list, standardize: bool) -> tuple:
    """(mean, std) that standardise train's targets (population std); (0, 1) when not standardising."""
    if not standardize:
        return 0.0, 1.0
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    mean, std = float(values.mean()), float(values.std())
    if not std > 0:
        raise TransferlabError(
            f"objective=regression: every train target is {values[0]:g}, so they cannot be standardised (std 0); "
            "give train varied targets, or set objective.standardize=false"
        )
    return mean, std


def original_scale(logits, mean: float, std: float):
    """The model's outputs [rows, 1] as values on the target's scale [rows]."""
    return logits.float()[:, 0] * std + mean


class Regression(Classification):
    name = "regression"
    Config = RegressionConfig
    stratify = None  # numbers: train_fraction and carved splits draw at random
    outputs = ("pred_value",)
    problem_type = "regression"  # how an export from elsewhere says it is one
    scores = ("pearson", "spearman")  # mse and rmse too, but lower is better
    usage = (
        "",
        "# the model outputs a standardised value; the export's config maps it back to the target's scale",
        'value = pipe("some text")[0]["score"] * model.config.target_std + model.config.target_mean',
    )

    @classmethod
    def check_rows(cls, split, name_row) -> None:
        super().check_rows(split, name_row)  # the inputs' rules, classification's
        for begin in range(0, len(split), 1000):
            for i, cell in enumerate(split[begin : begin + 1000]["label"]):
                if target_value(cell) is None:
                    raise TransferlabError(
                        f"{name_row(begin + i)}: target {label_text(cell)!r} is not a number; objective=regression "
                        "reads one number per row (e.g. 3.5): fix the cell, or leave it empty (see data.missing)"
                    )

    @classmethod
    def check_splits(cls, splits: dict, cfg) -> None:
        """Not classification's (labels seen in train): train's targets must have a spread to standardise."""
        target_scale([target_value(v) for v in splits["train"]["label"][:]], cfg.objective.standardize)

    def __init__(self, cfg, data_cfg, tokenizer, train):
        import warnings

        from torchmetrics import MetricCollection
        from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

        from transferlab.objectives.metrics import per_stage

        Objective.__init__(self, cfg, data_cfg, tokenizer, train)  # not classification's: no label vocabulary
        self.mean, self.std = target_scale([target_value(v) for v in train["label"][:]], cfg.standardize)

        def metrics():
            with warnings.catch_warnings():  # Spearman keeps every value of an epoch: a few floats per example
                warnings.filterwarnings("ignore", message=".*will save all targets and predictions")
                return MetricCollection(
                    {
                        "mse": MeanSquaredError(),
                        "rmse": MeanSquaredError(squared=False),
                        "pearson": PearsonCorrCoef(),
                        "spearman": SpearmanCorrCoef(),
                    }
                )

        self.metrics = per_stage(metrics)
        self._values = None  # (the eval batch's ids, its values on the target's scale): what step gives predict

    artifacts = Objective.artifacts  # no classes: no per-class table or confusion matrix

    def stored_labels(self) -> tuple:
        return (lambda cells: {"labels": [target_value(v) for v in cells]}), ["labels"], "numbers"

    def collator(self, stage: str):
        collate = super().collator(stage)
        collate.keep_ids = stage != "train"  # eval rows are written per example (predictions/<split>.jsonl)
        return collate

    def model_config(self) -> dict:
        return {
            "num_labels": 1,
            "problem_type": self.problem_type,
            "id2label": {0: "value"},
            "label2id": {"value": 0},
            "target_mean": self.mean,
            "target_std": self.std,
        }

    def step(self, model, batch, stage: str):
        from torch.nn.functional import mse_loss

        logits = model(**model_inputs(batch)).logits
        target = batch["labels"].float()
        loss = mse_loss(logits.float()[:, 0], (target - self.mean) / self.std)
        value = original_scale(logits.detach(), self.mean, self.std)
        self.metrics[stage].update(value, target)
        if stage != "train":
            self._values = (batch.get("ids"), value)
        return loss

    def predict(self, model, batch) -> list:
        ids, value = self._values if self._values is not None else (None, None)
        if ids is None or ids is not batch["ids"]:  # not the batch step just scored
            value = original_scale(model(**model_inputs(batch)).logits, self.mean, self.std)
        self._values = None
        # a target went through float32: 7 significant digits give it back as written (3.2, not 3.2000000476837)
        targets = [float(f"{t:.7g}") for t in batch["labels"].tolist()]
        values = value.tolist()
        return [{"id": i, "pred_value": round(v, 6), "label": t} for i, v, t in zip(batch["ids"], values, targets)]

    def written(self, stage: str, predictions: list) -> list:
        """Per example of the split (its row number as the run read it): the predicted value and the target."""
        rows = sorted(predictions, key=lambda r: r["id"])
        return [{"example": r["id"], "pred_value": r["pred_value"], "label": r["label"]} for r in rows]

    @classmethod
    def baseline(cls, splits: dict, seed: int) -> dict:
        """TF-IDF + ridge: mse, rmse, Pearson and Spearman, as a run of this objective writes them."""
        from transferlab.objectives.baselines import ridge

        return ridge(splits, {s: [target_value(v) for v in ds["label"][:]] for s, ds in splits.items()}, seed)

    @classmethod
    def decoded(cls, cfg, config, logits, options) -> list:
        mean, std = getattr(config, "target_mean", 0.0), getattr(config, "target_std", 1.0)
        return [{"pred_value": round(v, 6)} for v in original_scale(logits, mean, std).tolist()]
