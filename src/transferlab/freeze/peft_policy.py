"""freeze=peft: any peft method from config, through peft (the [lora] extra), imported only when chosen.

``freeze.method`` picks the method (peft_methods.py says which models take which) and ``freeze.peft_config`` is
passed to its peft config class as it is, over transferlab's defaults. The untied head modules train in full
(modules_to_save), as under freeze=lora, which is this policy's LoRA short form (lora.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.config.rules import choice
from transferlab.errors import TransferlabError
from transferlab.freeze import peft_methods as methods
from transferlab.freeze.blocks import find_blocks
from transferlab.freeze.common import Policy, ids_of


@dataclass
class FreezePeft:
    name: str = "peft"
    method: str = choice(*methods.METHODS)
    peft_config: Any = None  # a dict: keys of the method's peft config class (None: none)
    merge_on_export: bool = True  # lora, dora, ia3, adalora; prompt and prefix tuning always export the adapter


class Peft(Policy):
    """A peft method over the frozen model; the untied head modules train in full (modules_to_save). A head module
    holding the tied word embeddings (GPT-2's lm_head, BERT-MLM's cls) stays frozen, as in peft's own LM recipes:
    training a copy of it would untie it from the embeddings."""

    name = "peft"
    Config = FreezePeft
    targets_key = "freeze.peft_config.target_modules"  # how the user names the targets, for the error lines

    def __init__(self, cfg):
        super().__init__(cfg)
        self._stepped = False  # AdaLoRA: after_optimizer_step has seen a step with gradients
        self._total_from_run = False  # AdaLoRA: total_step comes from the run at its first step

    def method_config(self) -> tuple[str, dict]:
        """The method and the freeze.peft_config keys given for its peft config class."""
        from omegaconf import DictConfig, OmegaConf

        method, given = self.cfg.method, self.cfg.peft_config
        if given is None:
            return method, {}
        if not isinstance(given, (DictConfig, dict)):
            raise TransferlabError(
                f"freeze.peft_config={given} is not a dict; give {methods.CONFIG_CLASSES[method]}'s keys as one, "
                "e.g. freeze.peft_config={key:value}"
            )
        return method, OmegaConf.to_container(OmegaConf.create(given), resolve=True)

    def apply(self, model):
        try:
            import peft
        except ImportError:
            raise TransferlabError(f"freeze={self.name} needs peft: pip install 'transferlab[lora]'") from None
        method, given = self.method_config()
        config_cls = getattr(peft, methods.CONFIG_CLASSES[method])
        methods.check_keys(method, given, config_cls)
        task = methods.task_type(model)
        methods.refuse_unsupported(method, model, task)
        kwargs = {**methods.DEFAULTS[method], **given}
        if method in methods.ADAPTERS:
            if kwargs.get("target_modules") is None:
                kwargs.update(methods.default_targets(method, model, self.targets_key))
            elif method == "ia3":
                kwargs.setdefault("feedforward_modules", [])  # given targets: IA3 scales their outputs
            matched = methods.check_targets(kwargs["target_modules"], model, self.targets_key)
            if any(type(m).__name__ == "Conv1D" for m in matched):
                kwargs.setdefault("fan_in_fan_out", True)  # GPT-2's Conv1D stores its weight transposed
        if "modules_to_save" not in given:
            kwargs["modules_to_save"] = _untied_head(model) or None
        if method == "adalora" and kwargs.get("total_step") is None:
            self._total_from_run = True  # set at the first step; until then, the least peft accepts
            kwargs["total_step"] = kwargs.get("tinit", 0) + kwargs.get("tfinal", 0) + 1
        try:
            wrapped = peft.get_peft_model(model, config_cls(task_type=task, **kwargs))
        except (ValueError, TypeError) as e:
            why = " ".join(str(e).split())
            raise TransferlabError(f"freeze.method={method}: {why}; check freeze.peft_config") from e
        if method in methods.PROMPTS:
            _only_through_the_wrapper(wrapped, method)
        return wrapped

    def after_optimizer_step(self, model, step: int, total_steps: int) -> None:
        """AdaLoRA reallocates its ranks after every step, from the gradients it just used."""
        config = model.active_peft_config
        if config.peft_type != "ADALORA" or not any(p.grad is not None for p in model.parameters() if p.requires_grad):
            return  # another method, or a skipped step (on_nan=skip): no gradients to read
        first, self._stepped = not self._stepped, True
        if first and self._total_from_run:
            if config.tinit >= total_steps - config.tfinal:
                raise TransferlabError(
                    f"freeze.peft_config: tinit={config.tinit} and tfinal={config.tfinal} leave AdaLoRA no steps to "
                    f"reallocate ranks in this run's {total_steps}; lower them"
                )
            model.base_model.rankallocator.set_total_step(total_steps)
        model.base_model.update_and_allocate(step)

    def merges(self) -> bool:
        return self.method_config()[0] in methods.ADAPTERS and self.cfg.merge_on_export

    def model_for_export(self, model) -> tuple:
        if self.merges():
            # Merge a copy: merge_and_unload rewrites the modules in place, and the run may still use the peft model.
            # The trained head copies go in first: peft's IA3 unload can't place a head that is not one layer
            # (ModernBERT's dense + norm).
            merged = copy.deepcopy(model)
            _unwrap(merged.get_base_model(), trained=True)
            return merged.merge_and_unload(), "model"
        return AdapterExport(model), "adapter"


def _only_through_the_wrapper(peft_model, method: str) -> None:
    """Virtual tokens reach the model only through peft's wrapper: a training forward of the backbone under it that
    doesn't come through the wrapper (an objective reading the base model's hidden states itself) fails, before a
    step that would train the head without them, or nothing."""
    calls = {"inside": 0}

    def enter(module, args, kwargs):
        calls["inside"] += 1

    def leave(module, args, kwargs, output):
        calls["inside"] -= 1

    def check(module, args, kwargs):
        if module.training and not calls["inside"]:
            raise TransferlabError(
                f"freeze.method={method}: the objective ran {type(module).__name__} past peft's wrapper, so the "
                "virtual tokens never reach it (a loss from the base model's hidden states, as objective.loss_chunk>0 "
                f"computes one); turn that off or use {', '.join(methods.ADAPTERS)}"
            )

    peft_model.register_forward_pre_hook(enter, with_kwargs=True)
    peft_model.register_forward_hook(leave, with_kwargs=True, always_call=True)
    peft_model.get_base_model().base_model.register_forward_pre_hook(check, with_kwargs=True)


def _untied_head(model) -> list[str]:
    """The task model's head modules that own all their parameters (not tied to the word embeddings)."""
    blocks = find_blocks(model)
    head_ids = ids_of(blocks.part_params()["head"])
    return [
        name
        for name, m in model.named_children()
        if any(m is h for h in blocks.head) and all(id(p) in head_ids for p in m.parameters())
    ]


def _unwrap(model, trained: bool) -> None:
    """Put back, in place, the modules peft wrapped: the head modules' trained copies (trained) or their originals
    with every adapter layer's base layer (not trained)."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper, ModulesToSaveWrapper

    for name, module in list(model.named_modules()):
        if trained and isinstance(module, ModulesToSaveWrapper):
            original = module.modules_to_save[module.active_adapters[0]]
        elif not trained and isinstance(module, AuxiliaryTrainingWrapper):
            original = module.original_module
        elif not trained and isinstance(module, BaseTunerLayer):
            original = module.get_base_layer()
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, original)


def frozen_base(peft_model):
    """A copy of the model under the adapters as the run built it (its head modules as they were before training)."""
    base = copy.deepcopy(peft_model.get_base_model())
    _unwrap(base, trained=False)
    return base


class AdapterExport:
    """The export of a peft model that is not merged: the adapter (peft's save_pretrained: adapter_config.json and
    adapter_model.safetensors) and, in base/, the frozen model it adapts as the run built it (its labels, its
    vocabulary), which adapter_config.json names as its base_model_name_or_path. Everything else (generate, config,
    ...) is the peft model's."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        if name == "model":  # not set yet (copy and pickle look before __init__)
            raise AttributeError(name)
        return getattr(self.model, name)

    def save_pretrained(self, export_dir) -> None:
        base_dir = Path(export_dir) / "base"
        frozen_base(self.model).save_pretrained(base_dir)
        config = self.model.active_peft_config
        named = config.base_model_name_or_path
        config.base_model_name_or_path = str(base_dir.resolve())  # AutoPeftModel* loads the base from here
        try:
            self.model.save_pretrained(export_dir)
        finally:
            config.base_model_name_or_path = named


def adapter_usage(path: str, auto_class: str) -> str:
    """How an AdapterExport loads (the model card's snippet): its base from base/, the adapter over it."""
    return "\n".join(
        [
            "from peft import PeftModel",
            f"from transformers import AutoTokenizer, {auto_class}",
            "",
            f'base = {auto_class}.from_pretrained("{path}/base")',
            f'model = PeftModel.from_pretrained(base, "{path}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{path}")',
        ]
    )
