"""Ranges and choices of config values, declared on the schema field they constrain and checked in one walk.

A field declared as ``k: int = at_least(1)`` or ``head: str = choice("linear", "mlp")`` is checked wherever it
appears in a composed config, before any data is read or anything heavy is imported: one line names the key, the
value and what it may be.
"""

import dataclasses
import math

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import TransferlabError


def bounds(*, ge=None, gt=None, le=None, lt=None, allow=(), hint: str = "") -> dict:
    """A range: >=, >, <=, < (each optional), values allowed outside it (e.g. -1 for 'no limit'), and a hint."""
    return {"ge": ge, "gt": gt, "le": le, "lt": lt, "allow": tuple(allow), "hint": hint}


def ranged(default, **range_):
    """A dataclass field whose value must lie in the range `bounds(**range_)` describes."""
    return dataclasses.field(default=default, metadata={"range": bounds(**range_)})


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


def describe(range_: dict) -> str:
    b = {k: (_n(v) if k in ("ge", "gt", "le", "lt") and v is not None else v) for k, v in range_.items()}
    low = f"[{b['ge']}" if b["ge"] is not None else (f"({b['gt']}" if b["gt"] is not None else "(-inf")
    high = f"{b['le']}]" if b["le"] is not None else (f"{b['lt']})" if b["lt"] is not None else "inf)")
    if b["ge"] is not None and b["le"] is None and b["lt"] is None:
        text = f">= {b['ge']}"
    elif b["gt"] is not None and b["le"] is None and b["lt"] is None:
        text = f"> {b['gt']}"
    else:
        text = f"in {low}, {high}"
    allowed = " or ".join(str(a) for a in b["allow"])
    return f"{text}{f' (or {allowed})' if allowed else ''}"


def violates(value, range_: dict) -> bool:
    if value is None or isinstance(value, bool) or value in range_["allow"]:
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    return (
        (range_["ge"] is not None and value < range_["ge"])
        or (range_["gt"] is not None and value <= range_["gt"])
        or (range_["le"] is not None and value > range_["le"])
        or (range_["lt"] is not None and value >= range_["lt"])
    )


def check_value(key: str, value, range_: dict) -> None:
    if violates(value, range_):
        hint = f"; {range_['hint']}" if range_["hint"] else ""
        raise TransferlabError(f"{key}={value} must be {describe(range_)}{hint}")


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
            raise TransferlabError(
                f"{prefix}{key}={value} is not one of: {', '.join(sorted(c for c in choices[key] if c is not None))}"
            )
