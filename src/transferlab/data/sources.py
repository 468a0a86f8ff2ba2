"""data=mix's sources: each entry of data.sources made a whole data config, checked, and loaded as today.

An entry names a preset (`{name: wordnet_corpus}`: conf/data/wordnet_corpus.yaml) or is a files/hub config of its
own (`{source: files, train: a.txt, label_column: y}`), plus `weight` (default 1), its share of the training draws.
Its config is, in order of precedence: the entry, then the mix's reading settings that differ from the defaults
(INHERITED: debug=fast's sample limits reach every source), then the preset (or files/hub). The batching settings
(SHARED) are the mix's alone. Each source is then read, checked and cut (its own columns, missing-value policy and
carved splits) exactly as that data config alone would be; a split of the mix is a `Union` of the sources' splits
(data/union.py).

Nothing heavy is imported: the config checks (config/validate.py) use this before any data is read.
"""

import copy
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import TransferlabError, did_you_mean

# Batching and tokenizing: one value for the whole mix (its blocks and batches are one stream of one shape)
SHARED = (
    "max_seq_len",
    "batch_size",
    "eval_batch_size",
    "bucket_by_length",
    "bucket_window",
    "num_workers",
    "num_proc",
    "streaming",
    "shuffle_buffer",
)
# Cutting and reading: the mix's value reaches every source that does not set its own
INHERITED = (
    "max_train_samples",
    "max_eval_samples",
    "train_fraction",
    "validation_fraction",
    "split_seed",
    "missing",
    "encoding_errors",
    "quoting",
    "na_values",
)
# What a data set is: each source's own; the mix itself reads none of them
OWN = (
    "source",
    "path",
    "config_name",
    "train",
    "validation",
    "test",
    "text_column",
    "text_pair_column",
    "label_column",
    "label_separator",
    "question_column",
    "source_column",
    "target_column",
    "format",
)
EXAMPLE = "data.sources=[{name: wordnet_corpus, weight: 1}, {source: files, train: PATH, weight: 2}]"


@dataclass
class Source:
    index: int
    label: str  # its name in metrics.json (data/drawn_<label>_examples) and messages
    weight: float
    cfg: DictConfig  # the run's config with this source as its data

    @property
    def data(self) -> DictConfig:
        return self.cfg.data

    @contextmanager
    def named(self):
        """A one-line error from this source's checks or data, said of the source: its data.<key>s become
        data.sources.<i>.<key>s (what to set), else the line says which source it is about."""
        from transferlab.config.schema import DataConfig

        try:
            yield
        except TransferlabError as e:
            if type(e) is not TransferlabError:  # Interrupted and the like pass as they are
                raise
            keys = "|".join(DataConfig.__dataclass_fields__)
            line, n = re.subn(rf"(?<![\w./])data\.(?=({keys})\b)", f"data.sources.{self.index}.", str(e))
            raise TransferlabError(line if n else f"data.sources.{self.index} ({self.label}): {e}") from e


def presets() -> list:
    from transferlab.config import CONF_DIR

    return sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml") if p.stem != "mix")


def _preset(name: str) -> DictConfig:
    from transferlab.config import CONF_DIR

    node = OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml")
    node.pop("defaults", None)
    return node


def _weight(i: int, entry) -> float:
    if not isinstance(entry, DictConfig):
        raise TransferlabError(
            f"data.sources.{i}: expected a data config, got {entry!r}; write it as {{name: PRESET, "
            "weight: W}} or {source: files, train: PATH, weight: W}"
        )
    w = entry.get("weight", 1)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
        raise TransferlabError(
            f"data.sources.{i}.weight={w} must be a positive number (a source's share of the "
            f"training draws); set data.sources.{i}.weight=1, or drop that source"
        )
    return float(w)


def _check_mix_keys(data: DictConfig) -> None:
    from transferlab.config.schema import DataConfig

    defaults = DataConfig()
    if not data.sources:
        raise TransferlabError(f"data=mix needs its sources, each a data config with a weight: {EXAMPLE}")
    if data.streaming:
        raise TransferlabError(
            "data.streaming=true reads one stream, and data=mix prepares each of its sources; set data.streaming=false"
        )
    for key in OWN:
        if data[key] != getattr(defaults, key):
            raise TransferlabError(
                f"data.{key}={data[key]} is not read by data=mix (each source has its own); "
                f"set it on a source, e.g. data.sources.0.{key}={data[key]}"
            )


def _entry(i: int, entry: DictConfig) -> dict:
    fields = OmegaConf.to_container(entry, resolve=False)  # interpolations resolve in the source's own config
    fields.pop("weight", None)
    for key in fields:
        if key == "sources":
            raise TransferlabError(
                f"data.sources.{i}.sources: a source is one data set, not a mix; list every data set in data.sources"
            )
        if key in SHARED:
            raise TransferlabError(
                f"data.sources.{i}.{key}: every source of a mix shares the mix's {key}; set data.{key} instead"
            )
    return fields


def _base(i: int, fields: dict) -> DictConfig:
    """The preset the entry names, else files or hub by its `source`."""
    name = fields.get("name")
    if name in presets():
        return _preset(name)
    if name is not None and not (fields.get("train") or fields.get("path")):
        raise TransferlabError(
            f"data.sources.{i}.name={name}: no data preset of that name"
            f"{did_you_mean(str(name), presets())}; name one of {', '.join(presets())}, "
            "or give source: files with train: PATH"
        )
    return _preset("hub" if fields.get("source") == "hub" else "files")


def _merged(i: int, base: DictConfig, inherited: dict, fields: dict, shared: dict) -> DictConfig:
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    from transferlab.config.schema import DataConfig

    try:
        return OmegaConf.merge(OmegaConf.structured(DataConfig), base, inherited, fields, shared)
    except ConfigKeyError as e:
        known = [k for k in DataConfig.__dataclass_fields__ if k not in (*SHARED, "sources")] + ["weight"]
        raise TransferlabError(
            f"data.sources.{i}: unknown key '{e.key}'{did_you_mean(str(e.key), known)}; "
            f"a source's keys: {', '.join(known)}"
        ) from None
    except OmegaConfBaseException as e:
        raise TransferlabError(f"data.sources.{i}.{e.key}: {str(e).splitlines()[0]}") from None


def _label(fields: dict, data: DictConfig) -> str:
    if fields.get("name"):
        label = str(fields["name"])
    elif data.source == "files":
        label = Path(str(data.train)).name.split(".")[0] if data.train else "files"
    else:
        label = str(data.path).rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^\w.-]+", "_", label) or "source"


def sources(cfg: DictConfig) -> list:
    """data.sources as Source configs: every weight checked first, then each entry expanded (module docstring).
    Labels repeated by several sources get the source's index: files_0, files_1."""
    from transferlab.config.schema import DataConfig

    data = cfg.data
    weights = [_weight(i, entry) for i, entry in enumerate(data.sources)]
    _check_mix_keys(data)
    defaults = DataConfig()
    inherited = {k: data[k] for k in INHERITED if data[k] != getattr(defaults, k)}
    shared = {k: data[k] for k in SHARED}
    out = []
    for i, (entry, weight) in enumerate(zip(data.sources, weights)):
        fields = _entry(i, entry)
        scoped = copy.deepcopy(cfg)
        scoped.data = _merged(i, _base(i, fields), inherited, fields, shared)
        out.append(Source(i, _label(fields, scoped.data), weight, scoped))
    labels = [s.label for s in out]
    for s in out:
        if labels.count(s.label) > 1:
            s.label = f"{s.label}_{s.index}"
    return out
