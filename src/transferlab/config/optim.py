"""The optimizer's and the LR schedule's config: which one, its hyperparameters, and which of them each one reads.

An option one optimizer (or schedule) ignores is refused when set away from its default under another, in one line
(`check_optim`): never a key nobody reads. Imports nothing heavy: it runs before torch is loaded.
"""

from dataclasses import dataclass, field, fields
from typing import List, Optional

from transferlab.config.rules import choice, probability, ranged
from transferlab.errors import TransferlabError


@dataclass
class OptimizerConfig:
    name: str = choice("adamw", "adafactor", "sgd")
    lr: float = ranged(5e-4, gt=0.0)
    weight_decay: float = ranged(0.01, ge=0.0)  # decoupled (AdamW, Adafactor); added to the gradient (SGD's L2)
    # adamw
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = ranged(1e-8, gt=0.0)
    # sgd
    momentum: float = ranged(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    # adafactor (transformers' Adafactor with the configured lr: relative_step=False, warmup_init=False, T5's recipe)
    scale_parameter: bool = False  # true: the step is lr x the parameter's RMS
    clip_threshold: float = ranged(1.0, gt=0.0)  # the update's RMS is clipped to this
    decay_rate: float = ranged(-0.8, ge=-1.0, lt=0.0)  # second moment's decay: beta2 at step t = 1 - t^decay_rate
    beta1: Optional[float] = ranged(None, ge=0.0, lt=1.0, hint="null keeps no first moment (Adafactor's memory saving)")


@dataclass
class SchedulerConfig:
    name: str = choice("linear", "cosine", "constant", "inverse_sqrt", "cosine_with_restarts")
    warmup_ratio: float = probability(0.06)
    num_cycles: int = ranged(1, ge=1, hint="cosine_with_restarts: the number of hard restarts' cycles")


# Which optimizer (schedule) reads each option that not all of them read
OPTIMIZER_OPTIONS = {
    "betas": ("adamw",),
    "eps": ("adamw",),
    "momentum": ("sgd",),
    "nesterov": ("sgd",),
    "scale_parameter": ("adafactor",),
    "clip_threshold": ("adafactor",),
    "decay_rate": ("adafactor",),
    "beta1": ("adafactor",),
}
SCHEDULER_OPTIONS = {"num_cycles": ("cosine_with_restarts",)}


def _defaults(schema) -> dict:
    return {f.name: (f.default_factory() if callable(f.default_factory) else f.default) for f in fields(schema)}


def _unread(cfg, schema, options: dict, group: str) -> None:
    defaults = _defaults(schema)
    name = cfg.get("name", defaults["name"])  # (a run's config saved before a key existed lacks it)
    for key, readers in options.items():
        value = cfg.get(key, defaults[key])
        value = list(value) if key == "betas" and value is not None else value
        if name not in readers and value != defaults[key]:
            raise TransferlabError(
                f"{group}.{key}={value} applies to {group}.name={'|'.join(readers)} only, not {group}.name="
                f"{name}; drop {group}.{key} or pick {group}.name={'|'.join(readers)}"
            )


def check_optim(cfg) -> None:
    """Cross-field rules of the optimizer and scheduler groups (ranges and choices are checked with every field)."""
    _unread(cfg.optimizer, OptimizerConfig, OPTIMIZER_OPTIONS, "optimizer")
    _unread(cfg.scheduler, SchedulerConfig, SCHEDULER_OPTIONS, "scheduler")
    opt = cfg.optimizer
    betas = list(opt.get("betas", [0.9, 0.999]))
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise TransferlabError(f"optimizer.betas={betas} must be two numbers in [0, 1), e.g. [0.9, 0.999]")
    if opt.get("name") == "sgd" and opt.nesterov and opt.momentum == 0:
        raise TransferlabError("optimizer.nesterov=true needs momentum; set optimizer.momentum>0 (e.g. 0.9)")
