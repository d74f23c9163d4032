"""Where log lines go: a log file, and the terminal's stderr only when asked (``-v``).

Every swarmd process logs through loguru.  :func:`configure` replaces
loguru's default handler (every level on stderr) with a file sink, when a
file is given, and a stderr sink only for ``verbose`` > 0; results (stdout)
and errors (stderr, printed by the command line) are not log lines.

Python :mod:`logging` records (RQ's "Acquired scheduler lock ...", which RQ
would print on stdout) are routed into loguru by :class:`InterceptHandler`,
so they follow the same sinks.  llama.cpp's C logging is routed into loguru
by :func:`swarmd.router.providers.llama_cpp.route_llama_log` (DEBUG).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from loguru import logger

#: Line format of every sink.
FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {process} | {message}"
#: Python loggers routed into loguru (their records are otherwise printed by their libraries' own handlers).
ROUTED_LOGGERS = ("rq",)


class InterceptHandler(logging.Handler):
    """A :mod:`logging` handler that re-emits each record through loguru, at
    the record's level (the recipe of loguru's documentation)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` to loguru (level by name when loguru knows it, else its number)."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).log(level, "{}: {}", record.name, record.getMessage())


def route_stdlib_logging(level: int = logging.INFO) -> None:
    """Attach :class:`InterceptHandler` to :data:`ROUTED_LOGGERS` (at ``level``,
    a :mod:`logging` level) and stop them propagating: RQ then finds a handler
    and adds none of its own (``rq.logutils.setup_loghandlers``).  Idempotent."""
    for name in ROUTED_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(h, InterceptHandler) for h in log.handlers):
            log.addHandler(InterceptHandler())
        log.setLevel(level)
        log.propagate = False


def configure(verbose: int = 0, file: str | Path | None = None, level: str = "INFO", *,
              stderr_level: str | None = None, rotation: str | None = None, retention: str | int | None = None,
              enqueue: bool = False) -> None:
    """Set loguru's sinks for this process and route :mod:`logging` into it.

    ``file``: the log file (``None``: none), at ``level`` (a loguru level name),
    with loguru's ``rotation``/``retention``.  ``verbose``: 0 no log lines on
    stderr; 1 (``-v``) on stderr from ``stderr_level`` (default ``level``);
    2 or more (``-vv``) from DEBUG.  ``enqueue``: write the file from a
    background thread (safe across fork).  Raises ``OSError`` when the file
    cannot be opened."""
    logger.remove()
    if file is not None:
        logger.add(str(file), level=level, format=FORMAT, rotation=rotation, retention=retention, enqueue=enqueue)
    if verbose > 0:
        logger.add(sys.stderr, level="DEBUG" if verbose > 1 else (stderr_level or level), format=FORMAT)
    route_stdlib_logging()
