"""Foreign chatter a newcomer should not have to read, silenced precisely: by its message and where it comes from,
never by a blanket filter (anything else the libraries say still shows)."""

import logging
import warnings


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
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", module=r"lightning\.pytorch\.utilities\._pytree")
