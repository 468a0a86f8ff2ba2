"""Ranges and choices of config values, declared on the schema field they constrain and checked in one walk.

A field declared as ``k: int = at_least(1)`` or ``head: str = choice("linear", "mlp")`` is checked wherever it
appears in a composed config, before any data is read or anything heavy is imported: one line names the key, the
value and what it may be.
"""

import dataclasses
import math

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import TransferlabError


def ranged(default, *, ge=None, gt=None, le=None, lt=None, allow=(), hint: str = ""):
    """A dataclass field whose value must lie in the range (or be one of `allow`, e.g. -1 for 'no limit')."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt, "allow": tuple(allow), "hint": hint}
    return dataclasses.field(default=default, metadata={"range": bounds})


def choice(default, *others: str):
    """A string field that must be one of the given values (the default first)."""
    return dataclasses.field(default=default, metadata={"choices": (default, *others)})


def at_least(default, low=1, hint: str = ""):
    return ranged(default, ge=low, hint=hint)


def probability(default, hint: str = ""):
    return ranged(default, ge=0.0, le=1.0, hint=hint)


def fraction(default, hint: str = ""):
    """In (0, 1]: a share of something that must keep some of it."""
    return ranged(default, gt=0.0, le=1.0, hint=hint)


def _n(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def describe(bounds: dict) -> str:
    bounds = {k: (_n(v) if k in ("ge", "gt", "le", "lt") and v is not None else v) for k, v in bounds.items()}
    low = f"[{bounds['ge']}" if bounds["ge"] is not None else (f"({bounds['gt']}" if bounds["gt"] is not None else "(-inf")
    high = f"{bounds['le']}]" if bounds["le"] is not None else (f"{bounds['lt']})" if bounds["lt"] is not None else "inf)")
    if bounds["ge"] is not None and bounds["le"] is None and bounds["lt"] is None:
        text = f">= {bounds['ge']}"
    elif bounds["gt"] is not None and bounds["le"] is None and bounds["lt"] is None:
        text = f"> {bounds['gt']}"
    else:
        text = f"in {low}, {high}"
    allowed = " or ".join(str(a) for a in bounds["allow"])
    return f"{text}{f' (or {allowed})' if allowed else ''}"


def violates(value, bounds: dict) -> bool:
    if value is None or isinstance(value, bool) or value in bounds["allow"]:
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    return ((bounds["ge"] is not None and value < bounds["ge"]) or (bounds["gt"] is not None and value <= bounds["gt"])
            or (bounds["le"] is not None and value > bounds["le"]) or (bounds["lt"] is not None and value >= bounds["lt"]))


def check_value(key: str, value, bounds: dict) -> None:
    if violates(value, bounds):
        hint = f"; {bounds['hint']}" if bounds["hint"] else ""
        raise TransferlabError(f"{key}={value} must be {describe(bounds)}{hint}")


def check_fields(cfg: DictConfig, prefix: str = "") -> None:
    """Every ranged or choice field of every structured node under cfg (its schema says which fields are)."""
    schema = OmegaConf.get_type(cfg)
    fields = dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ()
    declared = {f.name: f.metadata["range"] for f in fields if "range" in f.metadata}
    choices = {f.name: f.metadata["choices"] for f in fields if "choices" in f.metadata}
    for key in cfg.keys():
        if key == "hydra" or OmegaConf.is_missing(cfg, key):
            continue
        value = cfg[key]
        if isinstance(value, DictConfig):
            check_fields(value, f"{prefix}{key}.")
        elif key in declared:
            check_value(f"{prefix}{key}", value, declared[key])
        elif key in choices and value is not None and value not in choices[key]:
            raise TransferlabError(f"{prefix}{key}={value} is not one of: {', '.join(sorted(c for c in choices[key] if c is not None))}")
