"""Logging for the stages and the `divwrite` command: one handler on stderr, rank-aware.

Modules log through `logging.getLogger(__name__)` (all under the `divwrite` logger);
`setup_logging` is called once by every stage (`core.stage.run_stage`) and by the command
line. Under `accelerate launch` every rank runs the same code: rank 0 logs everything, the
other ranks only warnings and errors, prefixed with their rank, so one message is not printed
once per process. `DIVWRITE_LOG_LEVEL` (default INFO) sets the level.
"""

from __future__ import annotations

import logging
import os
import sys

LEVEL_ENV = "DIVWRITE_LOG_LEVEL"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RankFilter(logging.Filter):
    """Rank 0 (or a single process) passes everything; another rank only WARNING and above,
    with `[rank N]` in front of the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        rank = int(os.environ.get("RANK", "0"))
        if rank == 0:
            return True
        if record.levelno < logging.WARNING:
            return False
        record.msg = f"[rank {rank}] {record.msg}"
        return True


class StderrHandler(logging.StreamHandler):
    """A handler on whatever `sys.stderr` is when a record is written (pytest swaps it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # not setStream: that flushes the old stream, which may be closed
        super().emit(record)


def setup_logging(level: str | int | None = None) -> logging.Logger:
    """Configure the `divwrite` logger (idempotent): stderr, time, level, logger name, message."""
    logger = logging.getLogger("divwrite")
    level = level or os.environ.get(LEVEL_ENV, "INFO")
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler.addFilter(RankFilter())
        logger.addHandler(handler)
    return logger
