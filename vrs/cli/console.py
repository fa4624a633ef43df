"""What a command prints: one short line per event, once, from rank zero; no advertisements.

Hydra's job logging (configs/hydra/job_logging/vrs*.yaml) formats and filters every record with the
classes below, Lightning's included. Warnings that say nothing about vrs are ignored by message and
module (``ignore_irrelevant_warnings``), so that the same dependencies' other warnings still show.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Lightning's rank_zero_info "💡 Tip: ... try installing litlogger / litmodels" lines.
_ADVERTS = ("💡 Tip:",)
# How Lightning finds a process's rank before its strategy sets one (lightning.fabric's _get_rank).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def process_rank() -> int:
    """This process's global rank: Lightning's once a strategy has set it, else the launcher's."""
    rank_zero = sys.modules.get("lightning_utilities.core.rank_zero")
    rank = getattr(getattr(rank_zero, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in _RANK_VARIABLES:
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


class NoAdverts(logging.Filter):
    """Drops Lightning's advertisements for its cloud products."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERTS)


class RankZeroInfo(logging.Filter):
    """Drops the records below WARNING of ranks other than zero: every rank of a DDP run sets up the
    same data and would print each of those lines once per rank."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or process_rank() == 0


class ConsoleFormatter(logging.Formatter):
    """``[HH:MM:SS] message`` on one line (a message's lines joined by "; ", rules of dashes
    dropped); warnings and errors also name their level and logger. Tracebacks keep their lines."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
        self._loud = logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        lines = [line.strip() for line in record.message.splitlines()]
        record.message = "; ".join(line for line in lines if line.strip("-"))
        loud = record.levelno >= logging.WARNING
        return self._loud.formatMessage(record) if loud else super().formatMessage(record)


# (message, category, module) of warnings raised inside dependencies about their own internals.
IGNORED_WARNINGS = [
    # torch >= 2.9 deprecates LeafSpec, which Lightning 2.6's own pytree helper still builds.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities"),
    # Frozen encoders stay in eval mode on purpose (ItemTower.train); Lightning's check counts them.
    (r"Found \d+ module\(s\) in eval mode at the start of training", UserWarning, ""),
]


def ignore_irrelevant_warnings() -> None:
    """Ignores IGNORED_WARNINGS (only those: other warnings of the same dependencies still show)."""
    for message, category, module in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
