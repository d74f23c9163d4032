"""What every command shares: consoles, the Redis connection, the error-to-exit-code mapping, tables.

Redis: :func:`redis_url` is the one place a command finds the daemon's Redis.
Output: :data:`out` (stdout) and :data:`err` (stderr) are rich consoles;
tabular output is a :class:`rich.table.Table` (:func:`table`, :func:`print_fields`).
Exit codes: :func:`run` maps a :class:`~swarmd.errors.SwarmdError` to its
``exit_code`` (0 ok, 1 unresolved, 2 bad input, 3 daemon unreachable; see
:mod:`swarmd.errors`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from swarmd.config import ConfigError, load_config
from swarmd.daemon.redis_server import mask_url, read_url_file
from swarmd.errors import BadInput, SwarmdError, Unreachable, exit_code_for
from swarmd.paths import data_dir, db_path

#: Columns of output going to a pipe or file (rich's default there is 80, which folds wide tables).
PIPED_WIDTH = 160


def _console(stream, **kwargs: Any) -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if stream.isatty() else PIPED_WIDTH, **kwargs)


err = _console(sys.stderr, stderr=True)
out = _console(sys.stdout)

#: Help of every ``--redis-url`` flag.
REDIS_URL_HELP = ("Redis of the daemon (default: $REDIS_URL, <data dir>/redis.url written by the running "
                  "daemon, daemon.redis_url of the config; a Redis merely found on localhost is never used)")


def add_redis_url(parser: argparse.ArgumentParser) -> None:
    """Add ``--redis-url`` (see :func:`redis_url`) to ``parser``."""
    parser.add_argument("--redis-url", help=REDIS_URL_HELP)


def redis_url(args: argparse.Namespace, *, daemon: bool = False) -> str | None:
    """The Redis URL a command uses, the first of:

    1. ``--redis-url`` (``args.redis_url``);
    2. ``$REDIS_URL``;
    3. ``<data dir>/redis.url``: the URL the running daemon wrote (data dir:
       ``--data-dir``, ``$SWARMD_DATA_DIR``, ``$STATE_DIRECTORY``, else
       ``~/.local/share/swarmd``; see :func:`swarmd.paths.data_dir`).  Skipped
       for the daemon itself (``daemon=True``): it writes that file, and one
       left by an earlier run may name a server that stopped with it;
    4. ``daemon.redis_url`` of the config (``args.config``);
    5. for the daemon ``None``, which :func:`swarmd.daemon.redis_server.ensure_redis`
       reads as "start swarmd's own ``redis-server``"; for any other command
       :class:`~swarmd.errors.Unreachable` (exit 3): a Redis merely found on
       localhost:6379 is never used (it may be anyone's, e.g. Debian's).

    The URL may hold a password: pass it on, log only
    :func:`~swarmd.daemon.redis_server.mask_url` of it.  Raises
    :class:`~swarmd.config.ConfigError` for a bad config when step 4 is reached.
    """
    url = getattr(args, "redis_url", None) or os.environ.get("REDIS_URL")
    if not url and not daemon:
        url = read_url_file(data_dir(getattr(args, "data_dir", None)))
    if not url:
        url = load_config(getattr(args, "config", None)).daemon.redis_url
    if url or daemon:
        return url or None
    raise Unreachable("no Redis known: no --redis-url, $REDIS_URL, redis.url in the data dir "
                      f"({data_dir(getattr(args, 'data_dir', None))}) or daemon.redis_url in the config. Is swarmd "
                      "running? Pass --data-dir of the running daemon (e.g. --data-dir /var/lib/swarmd)")


def ping(url: str) -> Redis:
    """A client of the Redis at ``url``, checked with a PING.

    Raises :class:`~swarmd.errors.Unreachable` (exit 3; password masked)
    when it does not answer within 3 s.
    """
    try:
        client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        client.ping()
    except (RedisError, OSError, ValueError) as exc:
        raise Unreachable(f"cannot reach Redis at {mask_url(url)}: {str(exc).rstrip('.')}. Is swarmd running? "
                          f"(start it with `swarmd --workers 1`, or pass --data-dir of the running daemon)") from None
    return client


def connect(args: argparse.Namespace) -> Redis:
    """:func:`ping` of the Redis :func:`redis_url` finds for ``args``."""
    return ping(redis_url(args))


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen command's ``func(args)``;
    returns the exit code.  ``--help`` is 0 and a usage error 2 (argparse prints
    them); a :class:`~swarmd.errors.SwarmdError` the command raises is printed as
    ``label: message`` on stderr and becomes its ``exit_code``
    (:func:`swarmd.errors.exit_code_for`); Ctrl-C is 130.  Other exceptions are
    bugs and propagate with their traceback."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        err.print("interrupted")
        return exit_code_for(exc)
    except SwarmdError as exc:
        err.print(f"[red]{escape(exc.label)}:[/] {escape(str(exc))}")
        return exit_code_for(exc)


#: Help of the ``--db`` flag of the commands that read the store (``feedback``, ``memory``, ``traces``).
DB_HELP = "SQLite store (default: storage.db under the data directory)"


def default_db(config_path: str | None, data: str | None) -> str:
    """The daemon's store: ``storage.db`` of the config (``memory.db`` when the
    config cannot be loaded), under the data directory (:func:`swarmd.paths.data_dir`)."""
    try:
        configured = load_config(config_path).storage.db
    except ConfigError:
        configured = "memory.db"
    return str(db_path(data_dir(data), configured))


def existing_db(args: argparse.Namespace) -> str:
    """The store a command reads: ``--db``, else :func:`default_db` of ``--config``
    and ``--data-dir``.  Raises :class:`~swarmd.errors.BadInput` (exit 2) if
    that file does not exist (commands that read never create it)."""
    db = args.db or default_db(args.config, args.data_dir)
    if not os.path.exists(db):
        raise BadInput(f"database {db!r} does not exist (no daemon has run with this data directory)")
    return db


def labels(text: str | None) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")``; ``None``/empty -> ``()``."""
    return tuple(part.strip() for part in text.split(",")) if text else ()


class PlainTable(Table):
    """A rich table whose ``str`` cells are shown as they are (no rich markup:
    a reason like ``rules[0]`` stays intact)."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        """Add one row: ``str`` cells wrapped in :class:`rich.text.Text` (shown
        literally), other renderables and ``kwargs`` passed to :meth:`rich.table.Table.add_row`."""
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)


def table(*columns: str, title: str | None = None) -> PlainTable:
    """A table with these column headers: the look of every table swarmctl prints."""
    return PlainTable(*columns, title=title)


def print_fields(rows: Iterable[tuple[str, Any]], console: Console | None = None) -> None:
    """``key  value`` rows as a borderless two-column table (keys bold); ``None`` values skipped."""
    grid = PlainTable(show_header=False, box=None)
    for key, value in rows:
        if value is not None:
            grid.add_row(Text(key, style="bold"), str(value))
    (console or out).print(grid)

