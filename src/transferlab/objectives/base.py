"""The objective interface: what every objective owns, with the defaults most of them share. An objective owns its
task end to end, so nothing upstream names a task.

- **Spec** (class-level facts, read before torch loads: keep module-level imports light): ``name``; ``Config``, its
  config schema; ``fields``, the data fields it reads (field -> the ``data.*`` key naming its column; a
  ``label_column`` or ``target_column`` field is a target, the others are its inputs; one mapped to an
  OPTIONAL_KEYS key, e.g. a pair's ``text_pair``, is read only when that key is set); ``columns``, the column names
  data=files/hub assume; ``stratify``; ``model_kinds``; ``auto_class``, its HF task class (also how a foreign export
  finds its objective); ``pipeline_tag``; ``monitor``; ``streams``; ``reads_features``; ``outputs``, the columns
  ``infer`` writes (none: it predicts nothing on new data), ``words``, the inputs it reads as lists of words,
  ``usage``, lines the export's model card adds to its Python snippet (how to read what the model gives);
  ``optional``, the fields whose empty cell is a value (not missing); ``reads``, further ``data.*`` keys it reads;
  ``chat``, whether it learns from conversations (data.format=messages|alpaca|sharegpt).
- **Input rules** (classmethods, on the config or the data as read): ``check``, ``reshape``, ``check_rows``,
  ``check_splits``, ``texts``, ``tokenizer_problem``, ``tokenizer_family``.
- **Core** (an instance, built from its config, the data config, the tokenizer and the train split, from which it
  derives its own label or tag vocabulary): ``prepare`` a raw split into rows with stable example ids;
  ``collator(stage)`` batches them, each batch carrying ``n_rows`` and ``n_tokens`` (CPU ints: the size losses are
  averaged over, the non-pad tokens throughput counts); ``step`` gives the loss and updates ``metrics`` (per stage);
  ``stats`` holds what preparing found that a user must hear of; ``model_config``; ``compile``.
- **Evaluation and inference**: ``predict`` / ``evaluate`` score whole eval sets at the epoch's end (records gathered
  across ranks, duplicates dropped by id), ``written`` gives the rows of <run>/predictions/<split>.jsonl, and
  ``infer`` predicts new rows from an export (transferlab-predict) with the encoding and decoding that ``predict``
  and ``step`` use; ``reports`` gives further files of the run dir; ``export_config`` the config the export records.

A new objective is one module (a subclass overriding what differs), one YAML and one registry line.
"""

from dataclasses import dataclass

from transferlab.data.chat import CHAT_FORMATS
from transferlab.errors import TransferlabError
from transferlab.models.architectures import KINDS

IGNORE = -100  # the target id every loss skips (padding, prompts, sub-words without a tag): torch's ignore_index
SPLIT_OF_STAGE = {"train": "train", "val": "validation", "test": "test"}  # Lightning's stage -> the data split
STAGE_OF_SPLIT = {split: stage for stage, split in SPLIT_OF_STAGE.items()}
TARGET_KEYS = ("label_column", "target_column")  # the data keys of targets: what new data need not hold
# Data keys of optional fields: a field mapped to one is read only when the data config names a column for it (a
# sentence pair's second text), so an objective that lists it reads single texts and pairs alike.
OPTIONAL_KEYS = ("text_pair_column",)


def input_fields(objective_cls) -> list:
    """The fields an objective reads of new data: its fields but the targets."""
    return [f for f, key in objective_cls.fields.items() if key not in TARGET_KEYS]


def read_fields(fields: dict, data_cfg) -> dict:
    """The fields (field -> data key) read under this data config: an optional one only when its column is set."""
    return {f: key for f, key in fields.items() if key not in OPTIONAL_KEYS or data_cfg.get(key)}


def needs_fast(tokenizer, objective: str, why: str) -> None:
    """Refuse a slow (Python) tokenizer where an objective maps tokens back to characters or words."""
    if not getattr(tokenizer, "is_fast", False):
        raise TransferlabError(
            f"objective={objective} needs a fast tokenizer ({why}); "
            "use tokenizer=train or a model that ships a tokenizer.json"
        )


def model_inputs(batch) -> dict:
    """What the model reads: tokens (input_ids, attention_mask, token_type_ids where the tokenizer gives them) or
    cached `features`; not targets or ids."""
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "features") if k in batch}


@dataclass
class InferOptions:
    """How transferlab-predict asks an objective to infer."""

    max_seq_len: int  # tokens of a row the model reads (the run's data.max_seq_len)
    batch_size: int = 32
    top_k: int = 1  # where it ranks labels: the k most likely
    progress: object = iter  # wraps the iterable of batches (a progress bar)


class Objective:
    # --- spec ---
    name: str
    Config: type
    fields: dict = {"text": "text_column"}  # field -> the data.* key naming its column
    # data=files and data=hub name the columns this way unless told otherwise (data.text_column=...)
    columns: dict = {"text_column": "text", "label_column": "label"}
    stratify: str | None = None  # the field that stratified cuts (train_fraction, carved splits) keep balanced
    model_kinds: tuple = KINDS
    auto_class: str
    pipeline_tag: str | None = None  # the Hub's task name, for the export's model card
    problem_type: str | None = None  # its HF config.problem_type, where one says it (a foreign export's objective)
    monitor: tuple = ("val/loss", "min")  # picks the best checkpoint, drives early stopping, returned to a sweeper
    scores: tuple = ()  # higher-is-better val/<score>s every validation logs: what multirun.sh --select-by may pick by
    # True: step calls the model with model_inputs(batch), so a batch may carry a frozen trunk's cached `features` in
    # place of tokens (freeze=backbone on a sequence classifier, data/features.py); the head then trains on them.
    reads_features: bool = False
    # True: prepare packs a stream as it is read when data.streaming=true (data/streaming.py)
    streams: bool = False
    outputs: tuple = ()  # the columns infer adds to a row (pred_*); (): it predicts nothing on new data
    words: tuple = ()  # input fields read as a list of words (a text cell is split at whitespace)
    usage: tuple = ()  # Python lines the export's model card adds after loading it (e.g. undoing a scaling)
    optional: tuple = ()  # fields whose empty cell means something (e.g. no label at all): never "missing"
    reads: tuple = ()  # data.* keys beyond its fields' that it reads (set for another objective: an error)
    chat: bool = False  # it reads conversations (data.format=messages|alpaca|sharegpt, data/chat.py)
    bucket_train: bool = True  # length-bucketed training batches unless data.bucket_by_length says (data/module.py)

    # --- input rules ---
    @classmethod
    def check(cls, cfg) -> None:
        """Cross-field rules on the composed config (no data read, nothing heavy). Default: every field's column."""
        data = cfg.data
        from transferlab.objectives import OBJECTIVES

        if data.get("format") in CHAT_FORMATS and not cls.chat:
            readers = "|".join(n for n, o in OBJECTIVES.items() if o.chat)
            raise TransferlabError(
                f"data.format={data.format} reads conversations, which objective={cls.name} does not learn from; "
                f"use objective={readers}, or a data.format of rows"
            )
        for key in OPTIONAL_KEYS:  # never a key nobody reads
            if data.get(key) and key not in cls.fields.values():
                readers = [n for n, o in OBJECTIVES.items() if key in o.fields.values()]
                raise TransferlabError(
                    f"data.{key}={data[key]} is not read by objective={cls.name}; use objective="
                    f"{'|'.join(readers)}, or set data.{key}=null"
                )
        for field, key in read_fields(cls.fields, data).items():
            if not data.get(key):
                others = [n for n, o in OBJECTIVES.items() if all(map(data.get, read_fields(o.fields, data).values()))]
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
    def texts(cls, split, batch_size: int = 1000):
        """Batches of the texts a trained tokenizer learns from (the fields the model reads): a pair's both texts."""
        pair = "text_pair" in (split.column_names or ())
        for i in range(0, len(split), batch_size):
            rows = split[i : i + batch_size]
            yield rows["text"] + (rows["text_pair"] if pair else [])

    @classmethod
    def tokenizer_problem(cls, tokenizer, train) -> str | None:
        """What this objective needs of its tokenizer that `tokenizer` lacks, seen on the train split (e.g. giving its
        targets back as written), said as "cannot ..."; None: nothing (the default: inputs need only be read)."""
        return None

    @classmethod
    def tokenizer_family(cls, kind: str | None) -> str:
        """The tokenizer tokenizer=train builds for this objective on a model of this kind."""
        return {"decoder": "byte_bpe", "encoder-decoder": "unigram"}.get(kind, "wordpiece")

    # --- core ---
    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import per_stage

        self.cfg, self.data_cfg, self.tokenizer = cfg, data_cfg, tokenizer
        # Per-stage metrics that step updates (metrics[stage][name]), logged as <stage>/<name>; default: none.
        self.metrics = per_stage(nn.ModuleDict)
        # What preparing found that a user must hear of (e.g. QA windows that cut their answer): printed by the run
        # and kept in metrics.json as data/<key>.
        self.stats: dict = {}

    def prepare(self, split: str, dataset):
        raise NotImplementedError

    def collator(self, stage: str):
        raise NotImplementedError

    def step(self, model, batch, stage: str):
        raise NotImplementedError

    def model_config(self) -> dict:
        """HF config fields the task model needs from the data (e.g. num_labels and id2label)."""
        return {}

    def compile(self, model, mode: str = "default") -> None:
        """compile=true: compile what `step` runs (torch.compile's `mode`). Default: the model, in place
        (nn.Module.compile), so state-dict keys, the export and checkpoints stay as without compile. An objective whose
        loss can join the model's graph compiles the two as one function instead (CLM's chunked loss, MLM's sparse
        head on a static number of rows)."""
        model.compile(mode=mode)

    # --- evaluation and inference ---
    def predict(self, model, batch) -> list | None:
        """Per-example records ({"id": ..., ...}) for `evaluate`; None: the per-batch metrics say it all."""
        return None

    def evaluate(self, stage: str, predictions: list) -> dict:
        """Metrics of a whole eval set from predict's records, one per example id."""
        return {}

    def artifacts(self, stage: str, predictions: list) -> dict:
        """Files a user reads of an eval set (e.g. a per-class table and a confusion matrix), {name: bytes or text},
        written into the run dir at each eval epoch's end (the test's last): what the run's metrics alone do not show.
        From the metric states or predict's records (gathered, one per example id); called on every rank (it may
        reduce metric states); {}: none."""
        return {}

    def written(self, stage: str, predictions: list) -> list | None:
        """Rows a user reads, from predict's records (e.g. QA's answers), written to <run>/predictions/<split>.jsonl;
        None: nothing to write."""
        return None

    def export_config(self) -> dict:
        """The objective's config as the export records it (what `infer` gets as `cfg`): what training settled
        (e.g. a threshold tuned on validation) in place of what it started from."""
        from omegaconf import OmegaConf

        return OmegaConf.to_container(self.cfg, resolve=True)

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options: InferOptions) -> list:
        """What `model` (an export's, in eval mode) predicts for each of `rows` ({input field: value}), as
        {output column: value}, in order; `cfg` is the objective's config as the run had it."""
        raise TransferlabError(f"objective={cls.name} predicts nothing on new data")

    @classmethod
    def baseline(cls, splits: dict, seed: int) -> dict:
        """transferlab-baseline's metrics for this task (objectives/baselines.py): a classical model fitted on
        `splits`' train, picked on validation, scored on validation and test with the objective's metric names."""
        raise TransferlabError(f"transferlab-baseline has no classical model for objective={cls.name}")
