"""The objective registry: name -> Objective class (objectives/base.py describes the interface).

Importing it is cheap (no torch): the preflight reads the classes' schemas, fields and model kinds.
"""

from transferlab.objectives.classification import Classification
from transferlab.objectives.clm import CausalLM
from transferlab.objectives.extractive_qa import ExtractiveQA
from transferlab.objectives.mlm import MaskedLM
from transferlab.objectives.multilabel_classification import MultilabelClassification
from transferlab.objectives.regression import Regression
from transferlab.objectives.seq2seq import Seq2Seq
from transferlab.objectives.sft import SFT
from transferlab.objectives.span_corruption import SpanCorruption
from transferlab.objectives.token_classification import TokenClassification

OBJECTIVES: dict[str, type] = {
    cls.name: cls
    for cls in (
        MaskedLM,
        CausalLM,
        Classification,
        Regression,
        MultilabelClassification,
        TokenClassification,
        ExtractiveQA,
        SpanCorruption,
        Seq2Seq,
        SFT,
    )
}


def register(cls: type) -> type:
    """Add an objective defined outside this package (e.g. in a plugin or a test); usable as a class decorator.
    Its YAML goes in a config dir on Hydra's search path (hydra.searchpath) as objective/<name>.yaml."""
    from transferlab.config.schema import store_schema

    OBJECTIVES[cls.name] = cls
    store_schema("objective", cls.name, cls.Config)
    return cls


def monitored(cfg, node=None, where: str = "callbacks.checkpoint") -> tuple[str, str]:
    """(metric, mode) that a callbacks node (checkpoint, early_stopping) watches: its own, else the objective's."""
    from transferlab.errors import TransferlabError

    metric, mode = OBJECTIVES[cfg.objective.name].monitor
    if node is None or not node.monitor:
        return metric, node.mode if node is not None and node.mode else mode
    if not node.mode:
        raise TransferlabError(f"{where}.monitor={node.monitor} needs its mode too: set {where}.mode=min or max")
    return node.monitor, node.mode
