"""What every freeze policy shares: the default methods, optimizer grouping and the requires_grad setter.

Imports are light at module level (no torch): the preflight reads the policies' schemas and checks.
"""

from __future__ import annotations

from transferlab.errors import TransferlabError
from transferlab.freeze.blocks import Blocks, find_blocks, is_norm


def no_decay_ids(model) -> set[int]:
    """Biases and norm weights: decaying them towards 0 only hurts (the usual BERT/GPT recipe)."""
    ids = {id(p) for name, p in model.named_parameters(remove_duplicate=False) if name.endswith("bias")}
    for module in model.modules():
        if is_norm(module):
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def optimizer_groups(
    name: str, params: list, lr: float, weight_decay: float, no_decay: set[int], **extra
) -> list[dict]:
    """One part's trainable params as up to two optimizer groups: with and without weight decay; empty groups dropped.
    `extra` keys ride along in each group (plain values: they are saved with the optimizer's state)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if id(p) not in no_decay]
    plain = [p for p in params if id(p) in no_decay]
    groups = [
        {"params": decay, "lr": float(lr), "weight_decay": float(weight_decay), "name": name, **extra},
        {"params": plain, "lr": float(lr), "weight_decay": 0.0, "name": f"{name}.no_decay", **extra},
    ]
    return [g for g in groups if g["params"]]


def train_only(model, trainable: set[int], policy: str, blocks: Blocks | None = None) -> None:
    """Set requires_grad from a set of parameter ids; a policy that trains nothing is an error, never a no-op."""
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    if not trainable:
        tied = blocks is not None and blocks.head and not blocks.part_params()["head"]
        why = " (its head is tied to the frozen word embeddings)" if tied else ""
        kind = type(model).__name__
        raise TransferlabError(f"freeze={policy} leaves no trainable parameters in {kind}{why}; pick another policy")


def ids_of(*param_lists) -> set[int]:
    return {id(p) for params in param_lists for p in params}


def eval_frozen_parts(model) -> None:
    """Parts where nothing learns go to eval(): no dropout there, so frozen features are deterministic."""
    blocks = find_blocks(model)
    params = blocks.part_params()
    for key, modules in blocks.part_modules().items():
        if params[key] and not any(p.requires_grad for p in params[key]):
            for module in modules:
                module.eval()
    if model.base_model is not model and not any(p.requires_grad for p in model.base_model.parameters()):
        model.base_model.eval()


class Policy:
    """The defaults every policy shares; each policy overrides only what differs.

    Class level (read before torch loads): ``name``, its schema ``Config`` (ranges and choices declared on the fields,
    checked with every other field), and ``check(cfg, depth)`` for rules that need the model's block count
    (``depth``: the shallowest stack's, None when unknown yet). Instance methods, called by the LightningModule in
    this order: ``apply`` (once, before the optimizer), ``param_groups`` (optimizer groups; a group may carry
    ``start_step``, the optimizer step before which its LR is 0), ``set_train_mode`` (after every ``model.train()``)
    and ``model_for_export``; ``after_optimizer_step`` follows every optimizer step (its gradients still there).
    ``featurizer`` is the probe contract: the module whose
    ``featurize(input_ids, attention_mask)`` gives features that never change under this policy (so a run may
    compute them once, data/features.py), or None.
    """

    name: str

    @classmethod
    def check(cls, cfg, depth: int | None) -> None:
        """Rules that need the model's depth: called by the preflight (depth from the config) and by apply."""

    def __init__(self, cfg):
        self.cfg = cfg

    def param_groups(self, model, lr: float, weight_decay: float, steps_per_epoch: int) -> list[dict]:
        """steps_per_epoch counts optimizer steps (after gradient accumulation)."""
        return optimizer_groups("trainable", list(model.parameters()), lr, weight_decay, no_decay_ids(model))

    def set_train_mode(self, model) -> None:
        pass  # every block trains something (all of it, biases or adapters): keep its dropout as model.train() set it

    def after_optimizer_step(self, model, step: int, total_steps: int) -> None:
        pass  # step: optimizer steps taken so far; total_steps: the run's estimate of all of them

    def featurizer(self, model):
        """The part of `model` whose features never change during training (None: every step computes anew)."""
        return None

    def model_for_export(self, model) -> tuple:
        return model, "model"
