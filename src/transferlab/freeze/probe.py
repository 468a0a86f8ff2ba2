"""freeze=backbone on a sequence classifier: a head trained over frozen, pooled features.

The frozen part (the base model, a pooling over its last hidden states and, for ``freeze.head=linear``, the dense layer
the HF class puts under its output layer) maps an example to one feature vector that never changes during training,
so data/features.py computes it once per split and the head trains on the cached vectors.

How an HF class turns hidden states into logits differs by family; each layout (freeze/layouts.py) says where it
splits into features and head, for the poolings that class computes itself. A probe in such a layout *is* that
class: it keeps the task model's modules under their own names (checkpoints, parameter tables and policies read the
same) and exports as that class with the same logits. Any other pooling (e.g. mean over BERT, whose class reads the
pooler) gets a linear head of its own and exports as the backbone plus that head (``save_pretrained`` /
``load_probe``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from transferlab.errors import TransferlabError
from transferlab.freeze.layouts import OwnLinear, Pooler, PredictionHead, choose_layout, pool


def is_sequence_classifier(model) -> bool:
    """The model is transformers' sequence-classification class for its config (one pooled vector per text), looked
    up in transformers' own registry: a probe can stand in for it."""
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    try:
        return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(model.config)] is type(model)
    except KeyError:
        return False


class Probe(nn.Module):
    """A task model's head over its frozen base model, callable on tokens or on cached features (``features=``)."""

    def __init__(self, model, pooling: str, head: str):
        super().__init__()
        if model.config.is_encoder_decoder:
            raise TransferlabError(
                f"freeze=backbone pools one encoder or decoder; {type(model).__name__} has both: use freeze=top_k"
            )
        self.layout = choose_layout(model, pooling, head)
        self.pooling, self.trains_dense = pooling, head == "mlp"
        base = model.base_model
        for name, child in model.named_children():  # the task model's own names, so checkpoints read the same
            if self.layout is not OwnLinear or child is base:
                self.add_module(name, child)
        self._base_name = next(name for name, child in model.named_children() if child is base)
        if self.layout is OwnLinear:
            self.probe_head = nn.Linear(model.config.hidden_size, model.config.num_labels)
            self.probe_head.weight.data.normal_(0.0, getattr(model.config, "initializer_range", 0.02))
            self.probe_head.bias.data.zero_()
        if self.layout is PredictionHead:
            model.config.classifier_pooling = pooling  # the export pools as the probe did
        self.config = model.config
        self.__dict__["task_model"] = model  # not registered again: its modules are this probe's own
        self.train(self.training)

    @property
    def base_model(self):
        return getattr(self, self._base_name)

    def train(self, mode: bool = True):
        super().train(mode)
        self.base_model.eval()  # frozen features: no dropout, the same vector every time
        return self

    @torch.no_grad()
    def featurize(self, input_ids, attention_mask, token_type_ids=None):
        segments = {} if token_type_ids is None else {"token_type_ids": token_type_ids}  # a BERT tokenizer sends them
        out = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **segments)
        if self.layout is Pooler and not self.trains_dense:
            return out.pooler_output  # the frozen pooler's output is the feature
        pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
        dense = self.layout.dense(self)
        return dense(pooled) if dense is not None and not self.trains_dense else pooled

    def forward(self, input_ids=None, attention_mask=None, features=None, token_type_ids=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        if features is None:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            features = self.featurize(input_ids, attention_mask, token_type_ids)
        return SequenceClassifierOutput(logits=self.layout.logits(self, features))

    def trained_modules(self) -> list:
        """The output layer, and the dense layer under it with freeze.head=mlp: all that trains."""
        return [self.get_submodule(self.layout.output)] + ([self.layout.dense(self)] if self.trains_dense else [])

    def cache_key(self) -> dict:
        """What the features depend on besides the data: every frozen tensor, the layout and the pooling."""
        import hashlib

        digest = hashlib.sha256()
        trained = {id(p) for m in self.trained_modules() for p in m.parameters()}
        tensors = [(n, p) for n, p in self.named_parameters() if id(p) not in trained] + list(self.named_buffers())
        for name, tensor in sorted(tensors, key=lambda item: item[0]):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return {
            "weights": digest.hexdigest(),
            "layout": self.layout.name,
            "pooling": self.pooling,
            "dense": self.trains_dense,
        }

    def exports_as_task_model(self) -> bool:
        return self.layout is not OwnLinear

    def save_pretrained(self, export_dir) -> None:
        """The form of a probe no HF class computes: the frozen backbone as an HF ``AutoModel`` (config.json with its
        base-model architecture, weights), ``probe_head.safetensors`` (weight [labels, hidden], bias [labels]) and
        ``probe.json`` (pooling, labels). Loaded as an HF classifier it would get a new, random head, and transformers
        reports that head's weights as missing; ``load_probe`` loads the probe itself."""
        from safetensors.torch import save_file

        export_dir = Path(export_dir)
        self.base_model.save_pretrained(export_dir)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.probe_head.state_dict().items()},
            str(export_dir / "probe_head.safetensors"),
        )
        meta = {
            "format": "transferlab-probe",
            "pooling": self.pooling,
            "id2label": {str(i): label for i, label in self.config.id2label.items()},
        }
        (export_dir / "probe.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_probe(export_dir) -> Probe:
    """A probe export (probe.json) as a module in eval mode: ``load_probe(d)(**tokenizer(texts, ...)).logits``."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    export_dir = Path(export_dir)
    meta_path = export_dir / "probe.json"
    if not meta_path.is_file():
        raise TransferlabError(
            f"{export_dir}: no probe.json, so not a probe export; an export of an HF class loads with "
            "AutoModelForSequenceClassification.from_pretrained"
        )
    meta = json.loads(meta_path.read_text())
    id2label = {int(i): label for i, label in meta["id2label"].items()}
    config = AutoConfig.from_pretrained(
        export_dir, num_labels=len(id2label), id2label=id2label, label2id={label: i for i, label in id2label.items()}
    )
    task = AutoModelForSequenceClassification.from_config(config)
    task.base_model.load_state_dict(AutoModel.from_pretrained(export_dir).state_dict())
    probe = Probe(task, meta["pooling"], "linear")
    probe.probe_head.load_state_dict(load_file(str(export_dir / "probe_head.safetensors")))
    return probe.eval()
