"""What every freeze policy shares: the default methods, AdamW grouping and the requires_grad setter."""

from typing import Callable

from torch import nn

from transferlab.errors import TransferlabError
from transferlab.freeze.blocks import Blocks, find_blocks, is_norm


def no_decay_ids(model: nn.Module) -> set[int]:
    """Biases and norm weights: decaying them towards 0 only hurts (the usual BERT/GPT recipe)."""
    ids = {id(p) for name, p in model.named_parameters(remove_duplicate=False) if name.endswith("bias")}
    for module in model.modules():
        if is_norm(module):
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def optimizer_groups(name: str, params: list, lr: float, weight_decay: float, no_decay: set[int]) -> list[dict]:
    """One part's trainable params as up to two AdamW groups: with and without weight decay; empty groups dropped."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if id(p) not in no_decay]
    plain = [p for p in params if id(p) in no_decay]
    groups = [
        {"params": decay, "lr": float(lr), "weight_decay": float(weight_decay), "name": name},
        {"params": plain, "lr": float(lr), "weight_decay": 0.0, "name": f"{name}.no_decay"},
    ]
    return [g for g in groups if g["params"]]


def train_only(model: nn.Module, trainable: set[int], policy: str, blocks: Blocks | None = None) -> None:
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


def eval_frozen_parts(model: nn.Module) -> None:
    """Parts where nothing learns go to eval(): no dropout there, so frozen features are deterministic."""
    blocks = find_blocks(model)
    params = blocks.part_params()
    for key, modules in blocks.part_modules().items():
        if params[key] and not any(p.requires_grad for p in params[key]):
            for module in modules:
                module.eval()
    if not any(p.requires_grad for p in model.base_model.parameters()):
        model.base_model.eval()


class Policy:
    """The defaults every policy shares; each policy overrides only what differs."""

    def __init__(self, cfg):
        self.cfg = cfg

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
        return optimizer_groups("trainable", list(model.parameters()), lr, weight_decay, no_decay_ids(model))

    def lr_multipliers(self, steps_per_epoch: int) -> list[Callable[[int], float]] | None:
        """Per param group, f(optimizer step) multiplying the scheduled LR; steps_per_epoch counts optimizer steps
        (after gradient accumulation). None: the schedule alone sets the LR; only gradual holds groups back."""
        return None

    def set_train_mode(self, model: nn.Module) -> None:
        pass  # every block trains something (all of it, biases or adapters): keep its dropout as model.train() set it

    def model_for_export(self, model: nn.Module) -> tuple[nn.Module, str]:
        return model, "model"
