"""Freeze policies: which parameters train, at which learning rate, in which mode, and what gets exported.

Each policy is one small class with its own schema (``Config``) and checks; freeze/common.py describes the methods
and their order. Parts (embeddings, layer.i per stack, pooler, final norms, head) and tied weights are defined in
blocks.py. Depth-based policies work per stack: on an encoder-decoder, top_k trains the top k blocks of the encoder
and of the decoder, and gradual/llrd count each block's height within its own stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from transferlab.config.rules import at_least, choice, ranged
from transferlab.errors import TransferlabError
from transferlab.freeze.blocks import Blocks, find_blocks
from transferlab.freeze.common import Policy, eval_frozen_parts, ids_of, no_decay_ids, optimizer_groups, train_only
from transferlab.freeze.lora import LoRA
from transferlab.freeze.peft_policy import Peft


def _depth(blocks: Blocks) -> int:
    return min(len(s.layers) for s in blocks.stacks)


@dataclass
class FreezeNone:
    name: str = "none"


class TrainAll(Policy):
    name = "none"
    Config = FreezeNone

    def apply(self, model):
        # No find_blocks here: freeze=none works for any model, so it is the fallback other errors point to.
        train_only(model, {id(p) for p in model.parameters()}, "none")
        return model


@dataclass
class FreezeBackbone:
    name: str = "backbone"
    head: str = choice("linear", "mlp")  # mlp: the dense layer under the output layer trains too
    pooling: str = choice("auto", "cls", "mean", "last")


class FrozenBackbone(Policy):
    """Frozen features: only the head trains. On a sequence classifier the model becomes a Probe (freeze/probe.py):
    a head over pooled features that data/features.py computes once per split. On other task models (an MLM or
    untied LM head reads every token) the head trains over the frozen model's output, computed every step."""

    name = "backbone"
    Config = FreezeBackbone

    def apply(self, model):
        from transferlab.freeze.layouts import default_pooling
        from transferlab.freeze.probe import Probe, is_sequence_classifier

        blocks = find_blocks(model)
        if is_sequence_classifier(model):
            pooling = default_pooling(model.config) if self.cfg.pooling == "auto" else self.cfg.pooling
            probe = Probe(model, pooling, self.cfg.head)
            train_only(probe, ids_of(*(m.parameters() for m in probe.trained_modules())), "backbone")
            return probe
        if self.cfg.pooling != "auto":
            raise TransferlabError(
                f"freeze.pooling={self.cfg.pooling}: {type(model).__name__}'s head reads every token, not one pooled "
                "vector per text; drop freeze.pooling"
            )
        if self.cfg.head == "mlp" and blocks.pooler is None:
            raise TransferlabError(
                f"freeze.head=mlp trains the pooler, but {type(model).__name__} has no pooler; use freeze.head=linear"
            )
        params = blocks.part_params()
        pooler = params["pooler"] if self.cfg.head == "mlp" else []
        train_only(model, ids_of(params["head"], pooler), "backbone", blocks)
        return model

    def featurizer(self, model):
        """A probe: its pooled features over the frozen base model (freeze/probe.py)."""
        from transferlab.freeze.probe import Probe

        return model if isinstance(model, Probe) else None

    def set_train_mode(self, model) -> None:
        if self.featurizer(model) is None:  # a Probe keeps its base model in eval mode itself
            eval_frozen_parts(model)

    def model_for_export(self, model) -> tuple:
        """A probe whose pooling an HF class computes exports as that class; any other as a probe form."""
        if self.featurizer(model) is None:
            return model, "model"
        return (model.task_model, "model") if model.exports_as_task_model() else (model, "probe")


@dataclass
class FreezeTopK:
    name: str = "top_k"
    k: int = at_least(1, hint="freeze=backbone trains the head alone")
    freeze_embeddings: bool = True


class TopK(Policy):
    """The top k blocks (of each stack), the final norms, the pooler and the head train; embeddings too unless
    freeze_embeddings."""

    name = "top_k"
    Config = FreezeTopK

    @classmethod
    def check(cls, cfg, depth: int | None) -> None:
        if depth is not None and cfg.k > depth:
            raise TransferlabError(
                f"freeze.k={cfg.k} but the model has {depth} blocks; "
                f"use freeze.k <= {depth} (freeze=none trains every block)"
            )

    def apply(self, model):
        blocks = find_blocks(model)
        self.check(self.cfg, _depth(blocks))
        params = blocks.part_params()
        keys = ["pooler", "head", *blocks.norm_keys()]
        keys += [key for key, i, depth in blocks.layer_keys() if i >= depth - self.cfg.k]
        keys += [] if self.cfg.freeze_embeddings else ["embeddings"]
        train_only(model, ids_of(*(params[key] for key in keys)), "top_k", blocks)
        return model

    def set_train_mode(self, model) -> None:
        eval_frozen_parts(model)


@dataclass
class FreezeGradual:
    name: str = "gradual"
    unfreeze_every: int = at_least(1)
    interval: str = choice("epoch", "step")


class GradualUnfreeze(Policy):
    """ULMFiT gradual unfreezing, DDP-safe: every parameter is trainable and in the optimizer from the start, and a
    group not yet unfrozen is held at an LR multiplier of exactly 0 (every optimizer then leaves it bit-identical, decay
    included). Flipping requires_grad mid-run instead, as Lightning's BackboneFinetuning does, breaks DDP (#20340).
    Stage 0 (head, pooler, final norms) trains from step 0; stage s unfreezes at s * unfreeze_every epochs/steps:
    stage 1 is the top block of each stack, stage depth the bottom one, and the embeddings come last.
    Frozen groups still get gradients, so the optimizer's moments start warm when they unfreeze (ULMFiT's fastai)."""

    name = "gradual"
    Config = FreezeGradual

    def apply(self, model):
        blocks = find_blocks(model)
        params = blocks.part_params()
        if not params["head"]:  # a bare base model, or an LM head that is the tied embedding (it would unfreeze last)
            kind = type(model).__name__
            raise TransferlabError(f"freeze=gradual starts with the head, but {kind} has no untied head; use llrd")
        train_only(model, {id(p) for p in model.parameters()}, "gradual")
        return model

    def param_groups(self, model, lr: float, weight_decay: float, steps_per_epoch: int) -> list[dict]:
        if self.cfg.interval == "epoch" and steps_per_epoch < 1:
            raise TransferlabError(f"freeze.interval=epoch needs at least one step per epoch, got {steps_per_epoch}")
        every = self.cfg.unfreeze_every * (steps_per_epoch if self.cfg.interval == "epoch" else 1)
        blocks = find_blocks(model)
        stages = {key: 0 for key in ("pooler", "head", *blocks.norm_keys())}
        stages.update({key: depth - i for key, i, depth in blocks.layer_keys()})
        stages["embeddings"] = max(len(s.layers) for s in blocks.stacks) + 1
        no_decay = no_decay_ids(model)
        return [
            group
            for key, params in blocks.part_params().items()
            for group in optimizer_groups(key, params, lr, weight_decay, no_decay, start_step=stages[key] * every)
        ]


@dataclass
class FreezeLLRD:
    name: str = "llrd"
    decay: float = ranged(0.8, gt=0.0, le=1.0, hint="0.8 is a common choice")


class LayerwiseLRDecay(Policy):
    """Layer-wise LR decay: block i (0 = bottom) of a stack of depth D gets lr * decay**(D - i), the embeddings
    lr * decay**(D + 1), and head, pooler and final norms the full lr (a final norm normalizes what the head reads)."""

    name = "llrd"
    Config = FreezeLLRD

    def apply(self, model):
        find_blocks(model)  # fail now, before training, if the layout can't be split into per-block LRs
        train_only(model, {id(p) for p in model.parameters()}, "llrd")
        return model

    def param_groups(self, model, lr: float, weight_decay: float, steps_per_epoch: int) -> list[dict]:
        blocks = find_blocks(model)
        decay = self.cfg.decay
        lrs = {key: lr for key in ("pooler", "head", *blocks.norm_keys())}
        lrs.update({key: lr * decay ** (depth - i) for key, i, depth in blocks.layer_keys()})
        lrs["embeddings"] = lr * decay ** (max(len(s.layers) for s in blocks.stacks) + 1)
        no_decay = no_decay_ids(model)
        parts = blocks.part_params().items()
        return [g for key, params in parts for g in optimizer_groups(key, params, lrs[key], weight_decay, no_decay)]


@dataclass
class FreezeBitFit:
    name: str = "bitfit"


class BitFit(Policy):
    """BitFit: the backbone's bias terms and the whole head train."""

    name = "bitfit"
    Config = FreezeBitFit

    def apply(self, model):
        blocks = find_blocks(model)
        params = blocks.part_params()
        head = ids_of(params["head"])
        named = model.base_model.named_parameters(remove_duplicate=False)
        biases = {id(p) for name, p in named if name.endswith("bias") and id(p) not in head}
        if not biases:
            kind = type(model).__name__
            raise TransferlabError(f"freeze=bitfit: {kind}'s backbone has no bias parameters; use freeze=lora")
        train_only(model, biases | head, "bitfit", blocks)
        return model


FREEZE_POLICIES: dict[str, type] = {
    cls.name: cls for cls in (TrainAll, FrozenBackbone, TopK, GradualUnfreeze, LayerwiseLRDecay, BitFit, LoRA, Peft)
}


def build_freeze_policy(cfg):
    """The policy named by cfg.name (a freeze config composed from its class's Config)."""
    if cfg.name not in FREEZE_POLICIES:
        raise TransferlabError(f"freeze={cfg.name} is unknown; choose one of: {', '.join(FREEZE_POLICIES)}")
    return FREEZE_POLICIES[cfg.name](cfg)
