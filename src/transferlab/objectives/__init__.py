"""Objectives: each owns its HF head class, loss, collator and per-stage torchmetrics. One dict, no hierarchy."""

from transferlab.objectives.classification import Classification
from transferlab.objectives.clm import CausalLM
from transferlab.objectives.mlm import MaskedLM

OBJECTIVES = {"mlm": MaskedLM, "clm": CausalLM, "classification": Classification}
STAGES = ("train", "val", "test")
