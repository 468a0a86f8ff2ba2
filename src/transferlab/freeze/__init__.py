"""Freeze policies behind ``freeze=<name>``: which parameters train, at which LR, and what gets exported.

Importing it is cheap (no torch): the preflight reads the policies' schemas and checks.
"""

from transferlab.freeze.blocks import Blocks, find_blocks
from transferlab.freeze.policies import FREEZE_POLICIES, build_freeze_policy
from transferlab.freeze.summary import format_parameter_table, parameter_summary

__all__ = [
    "FREEZE_POLICIES",
    "Blocks",
    "build_freeze_policy",
    "find_blocks",
    "format_parameter_table",
    "parameter_summary",
]
