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
import difflib
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
from swarmd.errors import EXIT_BAD_INPUT, BadInput, SwarmdError, Unreachable, exit_code_for
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
       :class:`~swarmd.errors.Unreachable` (exit 3; the message says when
       the data directory does not exist: it is never created here): a Redis merely found on
       localhost:6379 is never used (it may be anyone's, e.g. Debian's).

    The URL may hold a password: pass it on, log only
    :func:`~swarmd.daemon.redis_server.mask_url` of it.  Raises
    :class:`~swarmd.config.ConfigError` for a bad config when step 4 is reached.
    """
    url = getattr(args, "redis_url", None) or os.environ.get("REDIS_URL")
    data = data_dir(getattr(args, "data_dir", None), create=False)
    if not url and not daemon and data.is_dir():
        url = read_url_file(data)
    if not url:
        url = load_config(getattr(args, "config", None)).daemon.redis_url
    if url or daemon:
        return url or None
    where = (f"redis.url in the data dir ({data})" if data.is_dir() else
             f"data dir ({data} does not exist: no daemon has run with it; swarmctl did not create it)")
    raise Unreachable(f"no Redis known: no --redis-url, $REDIS_URL, {where} or daemon.redis_url in the config. "
                      "Is swarmd running? Pass --data-dir of the running daemon (e.g. --data-dir /var/lib/swarmd)")


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


class UsageError(BadInput):
    """A command line argparse refused (exit 2): the ``parser`` that refused it
    and argparse's ``message``; :func:`run` reports it with the usage line."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser, self.message = parser, message


class Parser(argparse.ArgumentParser):
    """The argument parser of ``swarmctl`` and ``swarmd`` (and, through
    ``add_subparsers``, of every subcommand): a usage error raises
    :class:`UsageError` for :func:`run` to report (naming unknown flags)
    instead of printing argparse's message and exiting."""

    def error(self, message: str):
        """Raise :class:`UsageError` (argparse calls this for every usage error)."""
        raise UsageError(self, message)


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser under it, depth first."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):     # aliases map to the same parser
                found += parsers(sub)
    return found


def add_global_flags(parser: argparse.ArgumentParser, flags: list[tuple[tuple[str, ...], dict]]) -> None:
    """Add ``flags`` (``(option strings, add_argument keywords)``) to ``parser``
    and to every subcommand under it, so that they are accepted before and
    after the subcommand (``swarmctl status --data-dir X``).  Under the root
    their default is ``SUPPRESS``: a flag given before the subcommand is not
    reset by the subcommand's default.  A subcommand with an option of the
    same name keeps its own."""
    for target in parsers(parser):
        for names, kwargs in flags:
            if any(name in target._option_string_actions for name in names):
                continue
            target.add_argument(*names, **(kwargs if target is parser else {**kwargs, "default": argparse.SUPPRESS}))


def unknown_flags(parser: argparse.ArgumentParser, argv: list[str]) -> list[tuple[str, str | None]]:
    """The flags in ``argv`` (before ``--``) that no parser of the tree knows,
    each with the closest known flag (``None`` if none is close): what a usage
    error reports instead of argparse's ``invalid choice: '2'`` for
    ``swarmd --wrkers 2``.  Negative numbers and ``-`` are values, not flags;
    a unique prefix of a known long flag is known (argparse accepts it)."""
    known = {name for p in parsers(parser) for name in p._option_string_actions}
    found = []
    for token in argv[:argv.index("--")] if "--" in argv else argv:
        name = token.split("=", 1)[0]
        if not name.startswith("-") or name == "-" or name.lstrip("-").replace(".", "", 1).isdigit():
            continue
        if name in known or (name.startswith("--") and any(k.startswith(name) for k in known)):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        found.append((name, close[0] if close else None))
    return found


def usage_error(parser: argparse.ArgumentParser, exc: UsageError, argv: list[str]) -> int:
    """Print a usage error on stderr (the refusing parser's usage line, then
    ``PROG: error: MESSAGE``, unknown flags named first) and return 2."""
    unknown = unknown_flags(parser, argv)
    message = exc.message
    if unknown:
        message = "; ".join(f"unknown flag {name}" + (f" (did you mean {close}?)" if close else "")
                            for name, close in unknown)
    exc.parser.print_usage(sys.stderr)
    print(f"{exc.parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(parser: argparse.ArgumentParser, argv: list[str] | None, setup=None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen command's ``func(args)``;
    returns the exit code.  ``--help`` is 0; a usage error 2, printed by
    :func:`usage_error` (which names unknown flags); ``setup(args)``, when
    given, runs between parsing and the command (logging: :func:`swarmd.logs.configure`);
    a :class:`~swarmd.errors.SwarmdError` the command raises is printed as
    ``label: message`` on stderr and becomes its ``exit_code``
    (:func:`swarmd.errors.exit_code_for`); Ctrl-C is 130.  Other exceptions are
    bugs and propagate with their traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return usage_error(parser, exc, argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if setup is not None:
            setup(args)
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
    return str(db_path(data_dir(data, create=False), configured))


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

