"""What a newcomer reads on the terminal: the run at a glance, and no foreign chatter. Chatter is silenced
precisely, by its message and where it comes from, never by a blanket filter (anything else the libraries say still
shows)."""

import logging
import warnings
from pathlib import Path


class _DropTip(logging.Filter):
    """Lightning's advertisement for a cloud logger (printed by every Trainer)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip:")


_TIP = _DropTip()


def silence() -> None:
    """Idempotent: safe to call for every Trainer built."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _TIP not in logger.filters:
        logger.addFilter(_TIP)
    # Lightning's own use of a torch API that torch deprecated: nothing a user can act on.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


def show_run(console, cfg, run_dir: Path) -> None:
    """What a run is, at a glance: the chosen member of each config group and the overrides given. The full composed
    config is in <run>/.hydra/config.yaml; verbose=true prints it here. The first line is printed unwrapped, so
    that its path stays one piece in a piped log (rich wraps at 80 columns there)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from rich.tree import Tree

    if cfg.verbose:
        from rich.syntax import Syntax

        console.print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml", theme="ansi_dark"))
        return
    path = run_dir / ".hydra" / "config.yaml"
    try:  # relative to where the user launched it: shorter, and clickable in most terminals
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    console.print(f"[bold]{cfg.task_name}[/bold]  (full config: {path}; verbose=true prints it)", soft_wrap=True)
    from transferlab.config import CONF_DIR

    hydra_cfg = HydraConfig.get()
    choices = {
        k: v
        for k, v in hydra_cfg.runtime.choices.items()
        if v and not k.startswith(("hydra", "schema")) and "@" not in k
    }
    tree = Tree("", hide_root=True)
    groups = tree.add("groups")
    for group, choice in sorted(choices.items()):
        if (CONF_DIR / group / f"{choice}.yaml").is_file():  # an optional group (regimen/) without a member: none
            groups.add(f"{group}: {choice}")
    # The learning rate may come from a regimen (by objective x freeze, or by init) rather than from a choice above
    groups.add(f"optimizer: {cfg.optimizer.name}, lr {cfg.optimizer.lr:g}")
    overrides = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+~") not in choices]
    if overrides:
        changed = tree.add("overrides")
        for override in overrides:
            changed.add(override)
    console.print(tree)
