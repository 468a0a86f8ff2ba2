"""The objective interface: what every objective owns, with the defaults most of them share.

An objective owns its task end to end, so nothing upstream names a task:
- class level (read before torch loads, so keep module-level imports light): ``name``, its config schema
  ``Config``, the data ``fields`` it reads and which ``data.*_column`` key supplies each, the field its splits are
  stratified by, the model ``kinds`` it accepts, the HF ``auto_class`` of its task model, the ``monitor`` metric
  that picks the best checkpoint, drives early stopping and is returned to a sweeper, ``reshape`` for a data layout
  it accepts besides its own, ``check`` / ``check_rows`` / ``check_splits`` for the rules that need the whole
  config, each row as read, or the loaded splits, and ``tokenizer_problem`` for what it needs of a tokenizer;
- instance, built from its config, the data config, the tokenizer and the train split (it derives its own label or
  tag vocabulary): ``prepare`` turns a raw split into a dataset with stable example ids, ``collator(stage)`` batches
  it, ``step`` gives the loss (and updates the per-batch metrics), ``predict`` / ``evaluate`` score whole eval sets
  at the epoch's end (after predictions are gathered across ranks and duplicates dropped by id), ``written`` gives
  the rows of <run>/predictions/<split>.jsonl, and
  ``batch_size`` / ``count_tokens`` / ``compile`` / ``model_config`` tell the rest of the run what it needs.

A new objective is one module (a subclass overriding what differs), one YAML and one registry line.
"""

from transferlab.errors import TransferlabError
from transferlab.models.architectures import KINDS

IGNORE = -100  # the target id every loss skips (padding, prompts, sub-words without a tag): torch's ignore_index
SPLIT_OF_STAGE = {"train": "train", "val": "validation", "test": "test"}  # Lightning's stage -> the data split
STAGE_OF_SPLIT = {split: stage for stage, split in SPLIT_OF_STAGE.items()}


class Objective:
    name: str
    Config: type
    fields: dict = {"text": "text_column"}  # field -> the data.* key naming its column
    # data=files and data=hub name the columns this way unless told otherwise (data.text_column=...)
    columns: dict = {"text_column": "text", "label_column": "label"}
    stratify: str | None = None  # the field that stratified cuts (train_fraction, carved splits) keep balanced
    model_kinds: tuple = KINDS
    auto_class: str
    pipeline_tag: str | None = None  # the Hub's task name, for the export's model card
    monitor: tuple = ("val/loss", "min")
    # True: step calls the model with model_inputs(batch), so a batch may carry a frozen trunk's cached `features` in
    # place of tokens (freeze=backbone on a sequence classifier, data/features.py); the head then trains on them.
    reads_features: bool = False
    # True: prepare packs a stream as it is read when data.streaming=true (data/streaming.py)
    streams: bool = False

    @classmethod
    def check(cls, cfg) -> None:
        """Cross-field rules on the composed config (no data read, nothing heavy). Default: every field's column."""
        data = cfg.data
        for field, key in cls.fields.items():
            if not data.get(key):
                from transferlab.objectives import OBJECTIVES

                others = [n for n, o in OBJECTIVES.items() if all(data.get(k) for k in o.fields.values())]
                instead = f", or use objective={'|'.join(others)}" if others else ""
                raise TransferlabError(
                    f"objective={cls.name} needs a '{field}' column, but data={data.name} has no data.{key}; "
                    f"set data.{key}=<column>{instead}"
                )

    @classmethod
    def reshape(cls, split, data_cfg):
        """A raw split as read, before its columns are checked: where a data layout the objective accepts is put
        in the one layout it reads (e.g. QA's flat answer_text/answer_start columns into answers)."""
        return split

    @classmethod
    def check_rows(cls, split, name_row) -> None:
        """Rules on each row of a split as read (columns renamed to field names, nothing carved from it yet);
        `name_row(i)` names row i for a message, e.g. "data.train (train.jsonl) line 3"."""

    @classmethod
    def check_splits(cls, splits: dict, cfg) -> None:
        """Rules on the loaded splits (columns renamed to field names), before the tokenizer or model is built."""

    @classmethod
    def tokenizer_problem(cls, tokenizer, train) -> str | None:
        """What this objective needs of its tokenizer that `tokenizer` lacks, seen on the train split (e.g. giving its
        targets back as written), said as "cannot ..."; None: nothing (the default: inputs need only be read)."""
        return None

    @classmethod
    def tokenizer_family(cls, kind: str | None) -> str:
        """The tokenizer tokenizer=train builds for this objective on a model of this kind."""
        return {"decoder": "byte_bpe", "encoder-decoder": "unigram"}.get(kind, "wordpiece")

    @classmethod
    def texts(cls, split, batch_size: int = 1000):
        """Batches of the texts a trained tokenizer learns from (the fields the model reads)."""
        for i in range(0, len(split), batch_size):
            yield split[i : i + batch_size]["text"]

    def __init__(self, cfg, data_cfg, tokenizer, train):
        self.cfg, self.data_cfg, self.tokenizer = cfg, data_cfg, tokenizer
        # What preparing found that a user must hear of (e.g. QA windows that cut their answer): printed by the run
        # and kept in metrics.json as data/<key>.
        self.stats: dict = {}

    # What the objective makes of the data; prepare and step have no default.
    def prepare(self, split: str, dataset):
        raise NotImplementedError

    def collator(self, stage: str):
        raise NotImplementedError

    def step(self, model, batch, stage: str):
        raise NotImplementedError

    def predict(self, model, batch) -> list | None:
        """Per-example records ({"id": ..., ...}) for `evaluate`; None: the per-batch metrics say it all."""
        return None

    def evaluate(self, stage: str, predictions: list) -> dict:
        """Metrics of a whole eval set from predict's records, one per example id."""
        return {}

    def written(self, stage: str, predictions: list) -> list | None:
        """Rows a user reads, from predict's records (e.g. QA's answers), written to <run>/predictions/<split>.jsonl;
        None: nothing to write."""
        return None

    @staticmethod
    def model_inputs(batch) -> dict:
        """What the model reads: tokens (input_ids, attention_mask, token_type_ids where the tokenizer gives them) or
        cached `features`; not targets or ids."""
        return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "features") if k in batch}

    def batch_size(self, batch) -> int:
        return (batch["input_ids"] if "input_ids" in batch else batch["features"]).size(0)

    def count_tokens(self, batch):
        """Non-pad input tokens, left on the device (reading it would sync a GPU every step); a batch of cached
        features reads none."""
        mask = batch.get("attention_mask")
        if mask is not None:
            return mask.sum()
        return batch["input_ids"].numel() if "input_ids" in batch else 0

    def compile(self, model, mode: str = "default") -> None:
        """compile=true: compile what `step` runs (torch.compile's `mode`). Default: the model, in place
        (nn.Module.compile), so state-dict keys, the export and checkpoints stay as without compile. An objective whose
        loss can join the model's graph compiles the two as one function instead (CLM's chunked loss, MLM's sparse
        head on a static number of rows)."""
        model.compile(mode=mode)

    def model_config(self) -> dict:
        """HF config fields the task model needs from the data (e.g. num_labels and id2label)."""
        return {}
