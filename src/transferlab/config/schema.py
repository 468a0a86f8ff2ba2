"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each group file starts with ``defaults: [/schema_<group>_<name>@_here_]``, so Hydra itself rejects an unknown key
or a wrong type while composing; ranged fields (config/rules.py) are checked right after. An objective's or a
freeze policy's schema is its class's ``Config``, registered from its registry. This module imports nothing heavy:
it runs before torch is loaded.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from transferlab.config.optim import OptimizerConfig, SchedulerConfig
from transferlab.config.rules import at_least, bounds, choice, fraction, ranged


@dataclass
class ModelConfig:
    arch: Optional[str] = None  # HF model_type to build from scratch (bert, gpt2, ...)
    name_or_path: Optional[str] = None  # hub id, local HF-format dir, or a previous run's export/
    random_init: bool = False  # with name_or_path: that model's architecture (and tokenizer), random weights
    config: Dict[str, Any] = field(default_factory=dict)  # HF config fields (sizes) for from-scratch builds
    revision: Optional[str] = None
    trust_remote_code: bool = False
    attn_implementation: Optional[str] = None  # eager | sdpa; None lets transformers choose
    # Embedding rows (and LM-head columns) padded up to a multiple of this, for the GPU's matmul tiles (llm.c pads
    # GPT-2's 50,257 to 50,304). The losses mask the padding; the export's config.vocab_size says the padded size.
    vocab_multiple: Optional[int] = at_least(None, hint="e.g. 64, or null for the tokenizer's size")
    # Memory levers: recompute each block's activations in the backward instead of keeping them; load the pretrained
    # weights quantized by bitsandbytes (CUDA only; the backbone then stays frozen: freeze=lora or freeze=backbone).
    gradient_checkpointing: bool = False
    load_in: Optional[str] = choice(None, "4bit", "8bit")


@dataclass
class DataConfig:
    name: str = "files"
    source: str = choice("files", "hub")
    path: Optional[str] = None  # hub dataset id (source=hub)
    config_name: Optional[str] = None  # hub dataset subset
    train: Optional[str] = None  # a file path (files) or a split name (hub)
    validation: Optional[str] = None  # missing: carved from train with data.split_seed
    test: Optional[str] = None
    text_column: str = "text"
    text_pair_column: Optional[str] = None  # a sentence pair's second text (objectives that read pairs)
    label_column: Optional[str] = None
    # multi-label: a text cell holds its labels separated by this (e.g. ";"), each part as written; null: a list
    label_separator: Optional[str] = None
    question_column: Optional[str] = (
        None  # extractive QA's question (its context is text_column, its answers label_column)
    )
    source_column: Optional[str] = None  # text-to-text (seq2seq, sft): the input text
    target_column: Optional[str] = None  # text-to-text: the text to generate
    max_seq_len: int = at_least(128, 8, hint="shorter blocks leave too little context")
    batch_size: int = at_least(32)
    eval_batch_size: Optional[int] = at_least(None)  # default: 2 x batch_size
    max_train_samples: Optional[int] = at_least(None, hint="a positive number of examples, or null for all")
    max_eval_samples: Optional[int] = at_least(None, hint="a positive number of examples, or null for all")
    train_fraction: float = fraction(
        1.0, hint="e.g. data.train_fraction=0.1 keeps 10% of train"
    )  # stratified for labeled data
    validation_fraction: float = ranged(0.1, gt=0.0, lt=1.0)  # share of train carved out when a split is missing
    split_seed: int = 1234
    # rows of one example each: batches of similar length (less padding). null: evaluation sorted, training as the
    # objective chooses (Objective.bucket_train: seq2seq draws at random, for quality); true/false: both stages
    bucket_by_length: Optional[bool] = None
    bucket_window: int = at_least(
        50, 1, hint="the batches sorted together: 50 pads least, a few keep batches more varied"
    )  # bucketing sorts windows of this many batches (data/buckets.py)
    num_workers: int = at_least(0, 0)
    num_proc: Optional[int] = at_least(
        None, hint="tokenizer processes, or null for one per CPU"
    )  # preparing large splits
    format: str = choice(
        "auto", "csv", "json", "parquet", "text", "conll", "squad", "messages", "alpaca", "sharegpt"
    )  # files: auto = by extension (.gz aside); squad = SQuAD JSON; messages|alpaca|sharegpt: chat JSONL (sft)
    encoding_errors: str = choice("strict", "replace")  # text files: strict (fail with file and byte offset) | replace
    streaming: bool = (
        False  # read train/validation/test as streams, tokenized and packed on the fly (packed objectives)
    )
    shuffle_buffer: int = at_least(
        10000, 1, hint="a number of examples"
    )  # streaming: the train stream's shuffle buffer
    license: Optional[str] = None  # the data's licence, as the export's model card states it
    quoting: str = choice(
        "auto", "csv", "none"
    )  # CSV/TSV quotes: csv (RFC 4180) | none (a quote is text) | auto: csv for .csv, none for .tsv
    na_values: List[str] = field(
        default_factory=list
    )  # CSV/TSV cells that mean "missing" besides an empty one, e.g. [NA, "null"]
    missing: str = choice(
        "error", "drop"
    )  # a row with an empty value in a column the objective reads: error (naming file and row) | drop
    # data=mix: several data configs drawn by weight, each {name: PRESET, ...} or {source: files, train: PATH, ...}
    # plus `weight` (default 1); data/sources.py expands them, docs/data.md says which keys the mix shares
    sources: List[Any] = field(default_factory=list)


@dataclass
class TokenizerConfig:
    source: str = choice("pretrained", "train")
    name_or_path: Optional[str] = None  # default: model.name_or_path
    vocab_size: int = at_least(8000, 16)
    min_frequency: int = at_least(2)
    lowercase: bool = False  # true folds case in every text, targets included: only for a case-blind task
    train_samples: Optional[int] = at_least(
        None, hint="a number of texts, or null for the whole train split"
    )  # trained on a seeded sample


@dataclass
class WandbConfig:
    project: str = "transferlab"
    entity: Optional[str] = None
    offline: bool = True
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class MlflowConfig:
    experiment: Optional[str] = None  # None: task_name
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<paths.output_dir>/mlflow.db
    artifact_location: Optional[str] = None  # for a new experiment; None: mlartifacts/ beside a SQLite store


@dataclass
class LoggerConfig:
    csv: bool = True
    wandb: Optional[WandbConfig] = None
    tensorboard: bool = False
    mlflow: Optional[MlflowConfig] = None


@dataclass
class CheckpointConfig:
    enabled: bool = True
    monitor: Optional[str] = None  # None: the objective's monitor (e.g. val/loss)
    mode: Optional[str] = choice(None, "min", "max")  # None: the objective's
    save_top_k: int = ranged(1, ge=0, allow=(-1,))
    every_n_train_steps: Optional[int] = at_least(None)


@dataclass
class EarlyStoppingConfig:
    monitor: Optional[str] = None  # None: the objective's monitor
    mode: Optional[str] = choice(None, "min", "max")
    patience: int = at_least(3)


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    lr_monitor: bool = True
    progress_bar: bool = True
    early_stopping: Optional[EarlyStoppingConfig] = None
    # The user's own Lightning callbacks, each {_target_: module.Class, **kwargs}, after transferlab's own
    extra: List[Any] = field(default_factory=list)


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "data"
    output_dir: str = "outputs"


SCHEMAS = {
    "model": {"model": ModelConfig},
    "data": {"data": DataConfig},
    "tokenizer": {"tokenizer": TokenizerConfig},
    "logger": {"logger": LoggerConfig},
    "callbacks": {"callbacks": CallbacksConfig},
    "paths": {"paths": PathsConfig},
}

# lightning.Trainer arguments are passed through as they are; these are the ones a user mistypes into a range.
TRAINER_RANGES = {
    "max_steps": bounds(ge=1, allow=(-1,), hint="-1 means no step limit"),
    "max_epochs": bounds(ge=1, allow=(-1,), hint="-1 means no epoch limit"),
    "min_epochs": bounds(ge=0),
    "accumulate_grad_batches": bounds(ge=1),
    "log_every_n_steps": bounds(ge=1),
    "check_val_every_n_epoch": bounds(ge=1),
    "val_check_interval": bounds(gt=0, hint="a share of an epoch (0, 1] or a number of steps"),
    "gradient_clip_val": bounds(ge=0),
    "limit_train_batches": bounds(gt=0, hint="a share (0, 1] or a number of batches"),
    "limit_val_batches": bounds(ge=0),
    "limit_test_batches": bounds(gt=0),
}


@dataclass
class TrainConfig:
    """train.yaml's own keys; the groups carry their own schemas."""

    task_name: str = "train"
    seed: int = at_least(42, 0)
    resume: str = "never"  # never | auto | PATH to a .ckpt (continue that run; not the same as model init)
    overwrite: bool = False  # true: replace the run held in the run dir (its run files are removed first; rundir.py)
    verbose: bool = False  # full tracebacks
    export: bool = True  # save_pretrained model + tokenizer into <run>/export
    test: bool = True  # evaluate the best checkpoint on the test split after fit
    compile: bool = False  # torch.compile what the objective's step runs (the model, or the model and its loss)
    compile_mode: str = choice(
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    )  # torch.compile's mode
    on_nan: str = choice("stop", "skip")  # what a NaN/Inf loss does
    init: Optional[str] = None  # scratch | pretrained: set by the init/ group (study sweeps), shown in tags and reports
    pretrained_source: Optional[str] = None  # the pre-trained model dir that init/ reads (weights or tokenizer)
    trainer: Dict[str, Any] = field(default_factory=dict)  # passed through to lightning.Trainer
    model: Any = None
    objective: Any = None
    freeze: Any = None
    data: Any = None
    tokenizer: Any = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    logger: Any = None
    callbacks: Any = None
    paths: Any = None


def store_schema(group: str, name: str, node: type) -> None:
    # Stored as plain configs (schema_<group>_<name>), not as a group, so they are not offered as choices.
    ConfigStore.instance().store(name=f"schema_{group}_{name}", node=node)


def register_schemas() -> None:
    from transferlab.freeze import FREEZE_POLICIES
    from transferlab.objectives import OBJECTIVES

    ConfigStore.instance().store(name="schema_train", node=TrainConfig)
    groups = {
        **SCHEMAS,
        "objective": {n: c.Config for n, c in OBJECTIVES.items()},
        "freeze": {n: c.Config for n, c in FREEZE_POLICIES.items()},
    }
    for group, nodes in groups.items():
        for name, node in nodes.items():
            store_schema(group, name, node)
