"""Freeze policies: which parameters train, at which learning rate, in which mode, and what gets exported.

Every policy has the same five methods, which the LightningModule calls in this order:
``apply`` (once, before the optimizer), ``param_groups`` (AdamW groups), ``lr_multipliers`` (per group, on top of
the LR schedule), ``set_train_mode`` (right after every ``model.train()``) and ``model_for_export``.
Parts (embeddings, layer.i, pooler, final_norm, head) and tied weights are defined in blocks.py.
"""

from typing import Callable

from torch import nn

from transferlab.errors import TransferlabError
from transferlab.freeze.blocks import find_blocks
from transferlab.freeze.common import Policy, eval_frozen_parts, ids_of, no_decay_ids, optimizer_groups, train_only
from transferlab.freeze.lora import LoRA


class TrainAll(Policy):
    def apply(self, model: nn.Module) -> nn.Module:
        # No find_blocks here: freeze=none works for any model, so it is the fallback other errors point to.
        train_only(model, {id(p) for p in model.parameters()}, "none")
        return model


class FrozenBackbone(Policy):
    """Frozen features: only the head trains (head=mlp: also the pooler)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.head not in ("linear", "mlp"):
            raise TransferlabError(f"freeze.head={cfg.head} is unknown; use freeze.head=linear or freeze.head=mlp")

    def apply(self, model: nn.Module) -> nn.Module:
        blocks = find_blocks(model)
        if self.cfg.head == "mlp" and blocks.pooler is None:
            raise TransferlabError(
                f"freeze.head=mlp trains the pooler, but {type(model).__name__} has no pooler; use freeze.head=linear"
            )
        params = blocks.part_params()
        pooler = params["pooler"] if self.cfg.head == "mlp" else []
        train_only(model, ids_of(params["head"], pooler), "backbone", blocks)
        return model

    def set_train_mode(self, model: nn.Module) -> None:
        eval_frozen_parts(model)


class TopK(Policy):
    """The top k blocks, the final norm, the pooler and the head train; embeddings too unless freeze_embeddings."""

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.k < 1:
            raise TransferlabError(f"freeze.k={cfg.k} must be at least 1; freeze=backbone trains the head alone")

    def apply(self, model: nn.Module) -> nn.Module:
        blocks = find_blocks(model)
        depth = len(blocks.layers)
        if self.cfg.k > depth:
            kind = type(model).__name__
            raise TransferlabError(f"freeze.k={self.cfg.k} but {kind} has {depth} blocks; use freeze.k <= {depth}")
        params = blocks.part_params()
        keys = ["pooler", "final_norm", "head"] + [f"layer.{i}" for i in range(depth - self.cfg.k, depth)]
        keys += [] if self.cfg.freeze_embeddings else ["embeddings"]
        train_only(model, ids_of(*(params[key] for key in keys)), "top_k", blocks)
        return model

    def set_train_mode(self, model: nn.Module) -> None:
        eval_frozen_parts(model)


class GradualUnfreeze(Policy):
    """ULMFiT gradual unfreezing, DDP-safe: every parameter is trainable and in the optimizer from the start, and a
    group not yet unfrozen is held at an LR multiplier of exactly 0 (AdamW then leaves it bit-identical, weight decay
    included). Flipping requires_grad mid-run instead, as Lightning's BackboneFinetuning does, breaks DDP (#20340).
    Stage 0 (head, pooler, final norm) trains from step 0; stage s unfreezes at s * unfreeze_every epochs/steps:
    stage 1 is the top block, stage depth the bottom block, stage depth+1 the embeddings.
    Frozen groups still get gradients, so AdamW's moments start warm when they unfreeze (as in ULMFiT's fastai)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.interval not in ("epoch", "step"):
            raise TransferlabError(f"freeze.interval={cfg.interval} is unknown; use freeze.interval=epoch or step")
        if cfg.unfreeze_every < 1:
            raise TransferlabError(f"freeze.unfreeze_every={cfg.unfreeze_every} must be at least 1")
        self._group_stages: list[int] | None = None

    def apply(self, model: nn.Module) -> nn.Module:
        blocks = find_blocks(model)
        params = blocks.part_params()
        if not params["head"]:  # a bare base model, or an LM head that is the tied embedding (it would unfreeze last)
            kind = type(model).__name__
            raise TransferlabError(f"freeze=gradual starts with the head, but {kind} has no untied head; use llrd")
        train_only(model, {id(p) for p in model.parameters()}, "gradual")
        return model

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        blocks = find_blocks(model)
        depth = len(blocks.layers)
        stages = {"embeddings": depth + 1, "pooler": 0, "final_norm": 0, "head": 0}
        stages.update({f"layer.{i}": depth - i for i in range(depth)})
        groups, self._group_stages = [], []
        for key, params in blocks.part_params().items():
            for group in optimizer_groups(key, params, lr, weight_decay, no_decay_ids(model)):
                groups.append(group)
                self._group_stages.append(stages[key])
        return groups

    def lr_multipliers(self, steps_per_epoch: int) -> list[Callable[[int], float]]:
        if self._group_stages is None:
            raise RuntimeError("GradualUnfreeze.param_groups(model, ...) must run before lr_multipliers()")
        if self.cfg.interval == "epoch" and steps_per_epoch < 1:
            raise TransferlabError(f"freeze.interval=epoch needs at least one step per epoch, got {steps_per_epoch}")
        every = self.cfg.unfreeze_every * (steps_per_epoch if self.cfg.interval == "epoch" else 1)
        return [lambda step, start=stage * every: 1.0 if step >= start else 0.0 for stage in self._group_stages]


class LayerwiseLRDecay(Policy):
    """Layer-wise LR decay: block i (0 = bottom) gets lr * decay**(depth - i), the embeddings lr * decay**(depth + 1),
    and head, pooler and final norm the full lr (the final norm normalizes what the head reads)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        if not 0 < cfg.decay <= 1:
            raise TransferlabError(f"freeze.decay={cfg.decay} must be in (0, 1]; 0.8 is a common choice")

    def apply(self, model: nn.Module) -> nn.Module:
        find_blocks(model)  # fail now, before training, if the layout can't be split into per-block LRs
        train_only(model, {id(p) for p in model.parameters()}, "llrd")
        return model

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        blocks = find_blocks(model)
        depth, decay = len(blocks.layers), self.cfg.decay
        lrs = {"embeddings": lr * decay ** (depth + 1), "pooler": lr, "final_norm": lr, "head": lr}
        lrs.update({f"layer.{i}": lr * decay ** (depth - i) for i in range(depth)})
        no_decay = no_decay_ids(model)
        parts = blocks.part_params().items()
        return [g for key, params in parts for g in optimizer_groups(key, params, lrs[key], weight_decay, no_decay)]


class BitFit(Policy):
    """BitFit: the backbone's bias terms and the whole head train."""

    def apply(self, model: nn.Module) -> nn.Module:
        blocks = find_blocks(model)
        params = blocks.part_params()
        named = model.base_model.named_parameters(remove_duplicate=False)
        biases = {id(p) for name, p in named if name.endswith("bias")}
        if not biases:
            kind = type(model).__name__
            raise TransferlabError(f"freeze=bitfit: {kind}'s backbone has no bias parameters; use freeze=lora")
        train_only(model, biases | ids_of(params["head"]), "bitfit", blocks)
        return model


FREEZE_POLICIES: dict[str, type] = {
    "none": TrainAll,
    "backbone": FrozenBackbone,
    "top_k": TopK,
    "gradual": GradualUnfreeze,
    "llrd": LayerwiseLRDecay,
    "bitfit": BitFit,
    "lora": LoRA,
}


def build_freeze_policy(cfg):
    """The policy named by cfg.name (a freeze config from config/schema.py)."""
    if cfg.name not in FREEZE_POLICIES:
        raise TransferlabError(f"freeze={cfg.name} is unknown; choose one of: {', '.join(FREEZE_POLICIES)}")
    return FREEZE_POLICIES[cfg.name](cfg)
