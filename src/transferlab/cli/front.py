"""Command-line front: compose and validate the config before Hydra runs the job, and say what's wrong in one line.

Hydra's own messages for a bad override span several lines and end in a stack-trace hint; here each becomes one
line naming the problem and the fix. Nothing heavy is imported, so these answers take well under a second.
"""

import os
import re
import shlex
import sys
from typing import Callable, List, Optional

from transferlab.errors import TransferlabError, did_you_mean

_PASSTHROUGH_FLAGS = set(
    "--help -h --hydra-help --version --cfg -c --info -i --shell-completion -sc --resolve -p --package".split()
)
_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}


def verbose_requested(argv: List[str]) -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or any(a in ("verbose=true", "verbose=True") for a in argv)


def _overrides(argv: List[str]) -> tuple[List[str], bool]:
    """The key=value overrides in argv (flags dropped) and whether this is a multirun."""
    out, multirun, skip = [], False, False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out, multirun


def _first_of_each_sweep(overrides: List[str]) -> List[str]:
    """A multirun is validated on its first job: a typo fails every job alike."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for raw, o in zip(overrides, parsed):
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()), None)
            out.append(f"{o.get_key_element()}={first}")
        else:
            out.append(raw)
    return out


def compose(overrides: List[str], config_name: str = "train"):
    """Compose train.yaml with overrides (hydra node included), translating Hydra's errors to TransferlabError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from transferlab.config import CONF_DIR, setup

    setup()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="transferlab"):
        try:
            return hydra_compose(config_name, overrides=overrides, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as e:
            raise TransferlabError(_explain(e, overrides)) from e


def _unparsable(overrides: List[str]) -> Optional[str]:
    """The first override Hydra's grammar cannot read on its own (an unquoted space, quote, bracket or comma)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parsed = parser.parse_overrides([override])
            if any(o.is_sweep_override() for o in parsed) and "," not in override.partition("=")[0]:
                return override if "/" in override or "." in override.partition("=")[2] else None
        except Exception:
            return override
    return None


def _explain(e: Exception, overrides: List[str]) -> str:
    from hydra.errors import MissingConfigException, OverrideParseException

    from transferlab.config import CONF_DIR

    text = str(e)
    bad = _unparsable(overrides) if isinstance(e, OverrideParseException) or "Ambiguous value" in text else None
    if bad:
        key, _, value = bad.partition("=")
        quoted = shlex.quote(key + '="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        return (
            f"{bad}: Hydra cannot read this value as it is (spaces, quotes, brackets, parentheses and commas mean "
            f"something in an override); quote it for Hydra, inside the shell's quotes: {quoted}"
        )
    if isinstance(e, MissingConfigException):
        m = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
        if m:
            group, name = m.groups()
            options = sorted(e.options or [])
            return (
                f"unknown {group} '{name}'{did_you_mean(name, options)}; "
                f"available: {', '.join(options) or 'none'} (choose with {group}=NAME)"
            )
        return text.splitlines()[0]
    m = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Could not append to config\. An item is already at '([^']+)'", text
    )
    if m and "Could not override" in text:
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        group = CONF_DIR / key
        if not parent and group.is_dir():  # a group the composed defaults leave out (init outside experiment=study)
            given = next((o.partition("=")[2] for o in overrides if o.startswith(key + "=")), "NAME")
            names = ", ".join(sorted(f.stem for f in group.glob("*.yaml")))
            return f"{key} is a config group this config does not include ({names}); add it with a plus: +{key}={given}"
        known = _keys_at(parent, [o for o in overrides if not o.startswith(key + "=")])
        where = f" in {parent}" if parent else ""
        suggestion = did_you_mean(leaf, known).replace("'", f"'{parent}.", 1) if parent else did_you_mean(leaf, known)
        extra = f"; to pass another lightning.Trainer argument use +{key}=VALUE" if parent == "trainer" else ""
        if parent.startswith("data.sources."):  # a source is a plain dict: only the keys it was given exist
            extra = f"; to give a source another data key use +{key}=VALUE"
        return f"unknown key '{key}'{suggestion}; keys{where}: {', '.join(sorted(known))}{extra}"
    if m:
        given = next((o for o in overrides if o.startswith(f"+{m.group(1)}=")), f"+{m.group(1)}=VALUE")
        return f"'{m.group(1)}' is already a key, so '+' cannot add it; set it without the plus: {given[1:]}"
    cause = e.__cause__ or e
    full_key = getattr(cause, "full_key", None)
    first = str(cause).splitlines()[0]
    m = re.search(r"Error merging override (\S+)", text)
    if m:
        key, _, value = m.group(1).partition("=")
        ref = getattr(cause, "ref_type", None) or getattr(cause, "object_type_str", None)
        expected = re.search(r"converted to (\w+)", first) or re.search(r"is not a valid (\w+)", first)
        kind = expected.group(1).lower() if expected else str(ref)
        article = "an" if kind[:1] in "aeiou" else "a"
        return f"{key}: expected {article} {kind}, got '{value}' ({first})"
    if "not in" in first or "Key '" in first:
        leaf = re.search(r"Key '([^']+)'", first)
        parent = full_key.rpartition(".")[0] if full_key else ""
        known = _keys_at(parent, [])
        name = leaf.group(1) if leaf else (full_key or "?")
        return (
            f"unknown key '{full_key or name}' in a config file{did_you_mean(name, known)}; "
            f"keys here: {', '.join(sorted(known))}"
        )
    return f"{first}" + (f" (at {full_key})" if full_key else "")


def _keys_at(path: str, overrides: List[str]) -> List[str]:
    """Keys of the config node at `path`, composed without the offending override."""
    from hydra import compose as hydra_compose

    try:
        cfg = hydra_compose("train", overrides=overrides)
    except Exception:
        return []
    node = cfg
    for part in [p for p in path.split(".") if p]:
        if hasattr(node, "keys"):
            node = node.get(part)
        else:  # a list (data.sources) is indexed by number
            node = node[int(part)] if hasattr(node, "__len__") and part.isdigit() and int(part) < len(node) else None
    return list(node.keys()) if hasattr(node, "keys") else []


def report(e: BaseException, verbose: bool) -> None:
    """One line for the user; the traceback only when asked for."""
    if verbose:
        import traceback

        traceback.print_exception(e)
    kind = "" if isinstance(e, TransferlabError) else f"{type(e).__name__}: "
    hint = (
        ""
        if verbose or isinstance(e, TransferlabError)
        else " (set verbose=true or HYDRA_FULL_ERROR=1 for the traceback)"
    )
    message = " ".join(str(e).split())
    print(f"error: {kind}{message}{hint}", file=sys.stderr)


def preflight(argv: List[str], config_name: str = "train") -> None:
    """Compose and validate before Hydra starts the job, then claim the run dir before Hydra writes .hydra/ into it
    (rundir.py); raises TransferlabError."""
    from transferlab.config.validate import validate
    from transferlab.run.rundir import claim_run_dirs

    overrides, multirun = _overrides(argv)
    if multirun:
        overrides = _first_of_each_sweep(overrides)
    cfg = compose(overrides, config_name)
    validate(cfg)
    claim_run_dirs(cfg, multirun)


def print_help(argv: List[str], config_name: str = "train") -> None:
    """--help: the groups and the composed config, as Hydra's help shows them, without Hydra's group scan (which
    deep-copies the ConfigStore once per group: ~1 s before anything is printed)."""
    from omegaconf import OmegaConf

    from transferlab.config import CONF_DIR

    cfg = compose(_overrides(argv)[0], config_name)
    groups = sorted(d for d in CONF_DIR.iterdir() if d.is_dir() and d.name != "hydra")
    lines = [
        cfg.hydra.help.header,
        "== Configuration groups ==",
        "Compose your configuration from those groups (group=option)",
        "",
    ]
    lines += [f"{d.name}: {', '.join(sorted(f.stem for f in d.glob('*.yaml')))}" for d in groups]
    lines += ["", "", "== Config ==", "Override anything in the config (foo.bar=value)", ""]
    shown = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    lines += [OmegaConf.to_yaml(shown), cfg.hydra.help.footer]
    print("\n".join(lines))


def run_cli(hydra_entry: Callable[[], object], argv: Optional[List[str]] = None, config_name: str = "train") -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        try:
            print_help(argv, config_name)
        except TransferlabError as e:
            report(e, verbose_requested(argv))
            sys.exit(2)
        return
    if not any(a.split("=")[0] in _PASSTHROUGH_FLAGS for a in argv):
        try:
            preflight(argv, config_name)
        except TransferlabError as e:
            from transferlab.run.outputs import record_config_failure

            report(e, verbose_requested(argv))
            record_config_failure(argv, e)
            sys.exit(2)
    hydra_entry()
