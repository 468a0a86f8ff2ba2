"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each group file starts with ``defaults: [/schema_<group>_<name>@_here_]``, so Hydra itself rejects an unknown key
or a wrong type while composing. This module imports nothing heavy: it runs before torch is loaded.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ModelConfig:
    arch: Optional[str] = None  # HF model_type to build from scratch (bert, gpt2, ...)
    name_or_path: Optional[str] = None  # hub id, local HF-format dir, or a previous run's export/
    random_init: bool = False  # with name_or_path: that model's architecture (and tokenizer), random weights
    config: Dict[str, Any] = field(default_factory=dict)  # HF config fields (sizes) for from-scratch builds
    revision: Optional[str] = None
    trust_remote_code: bool = False
    attn_implementation: Optional[str] = None  # eager | sdpa; None lets transformers choose


@dataclass
class MLMConfig:
    name: str = "mlm"
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8  # of the selected tokens: 80% [MASK]
    random_replace_prob: float = 0.1  # 10% a random token, the rest unchanged
    whole_word_mask: bool = False
    sparse_head: bool = True  # vocabulary logits only at masked positions


@dataclass
class CLMConfig:
    name: str = "clm"


@dataclass
class ClassificationConfig:
    name: str = "classification"


@dataclass
class FreezeNone:
    name: str = "none"


@dataclass
class FreezeBackbone:
    name: str = "backbone"
    head: str = "linear"  # linear | mlp


@dataclass
class FreezeTopK:
    name: str = "top_k"
    k: int = 1
    freeze_embeddings: bool = True


@dataclass
class FreezeGradual:
    name: str = "gradual"
    unfreeze_every: int = 1
    interval: str = "epoch"  # epoch | step


@dataclass
class FreezeLLRD:
    name: str = "llrd"
    decay: float = 0.8


@dataclass
class FreezeBitFit:
    name: str = "bitfit"


@dataclass
class FreezeLoRA:
    name: str = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: Optional[List[str]] = None  # None: the architecture's attention projections
    merge_on_export: bool = True


@dataclass
class DataConfig:
    name: str = "files"
    source: str = "files"  # files | hub
    path: Optional[str] = None  # hub dataset id (source=hub)
    config_name: Optional[str] = None  # hub dataset subset
    train: Optional[str] = None  # a file path (files) or a split name (hub)
    validation: Optional[str] = None  # missing: carved from train with data.split_seed
    test: Optional[str] = None
    text_column: str = "text"
    label_column: Optional[str] = None
    max_seq_len: int = 128
    batch_size: int = 32
    eval_batch_size: Optional[int] = None  # default: 2 x batch_size
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    train_fraction: float = 1.0  # 0 < f <= 1, stratified by label for labeled data
    validation_fraction: float = 0.1  # share of train carved out when a split is missing
    split_seed: int = 1234
    bucket_by_length: bool = True  # classification: batches of similar length (less padding)
    num_workers: int = 0
    encoding_errors: str = "strict"  # text files: strict (fail with file and byte offset) | replace


@dataclass
class TokenizerConfig:
    source: str = "pretrained"  # pretrained | train
    name_or_path: Optional[str] = None  # default: model.name_or_path
    vocab_size: int = 8000
    min_frequency: int = 2
    lowercase: bool = True


@dataclass
class OptimizerConfig:
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class SchedulerConfig:
    name: str = "linear"  # linear | cosine | constant
    warmup_ratio: float = 0.06


@dataclass
class WandbConfig:
    project: str = "transferlab"
    entity: Optional[str] = None
    offline: bool = True
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    csv: bool = True
    wandb: Optional[WandbConfig] = None
    tensorboard: bool = False


@dataclass
class CheckpointConfig:
    enabled: bool = True
    monitor: Optional[str] = "val/loss"
    mode: str = "min"
    save_top_k: int = 1
    every_n_train_steps: Optional[int] = None


@dataclass
class EarlyStoppingConfig:
    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 3


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    lr_monitor: bool = True
    progress_bar: bool = True
    early_stopping: Optional[EarlyStoppingConfig] = None


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "data"
    output_dir: str = "outputs"


SCHEMAS = {
    "model": {"model": ModelConfig},
    "objective": {"mlm": MLMConfig, "clm": CLMConfig, "classification": ClassificationConfig},
    "freeze": {
        "none": FreezeNone,
        "backbone": FreezeBackbone,
        "top_k": FreezeTopK,
        "gradual": FreezeGradual,
        "llrd": FreezeLLRD,
        "bitfit": FreezeBitFit,
        "lora": FreezeLoRA,
    },
    "data": {"data": DataConfig},
    "tokenizer": {"tokenizer": TokenizerConfig},
    "logger": {"logger": LoggerConfig},
    "callbacks": {"callbacks": CallbacksConfig},
    "paths": {"paths": PathsConfig},
}

@dataclass
class TrainConfig:
    """train.yaml's own keys; the groups carry their own schemas."""

    task_name: str = "train"
    seed: int = 42
    resume: str = "never"  # never | auto | PATH to a .ckpt (continue that run; not the same as model init)
    verbose: bool = False  # full tracebacks
    export: bool = True  # save_pretrained model + tokenizer into <run>/export
    test: bool = True  # evaluate the best checkpoint on the test split after fit
    compile: bool = False  # torch.compile the model
    on_nan: str = "stop"  # stop | skip: what a NaN/Inf loss does
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


def register_schemas() -> None:
    cs = ConfigStore.instance()
    # Stored as plain configs (schema_<group>_<name>), not as a group, so they are not offered as choices.
    cs.store(name="schema_train", node=TrainConfig)
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(name=f"schema_{group}_{name}", node=node)
