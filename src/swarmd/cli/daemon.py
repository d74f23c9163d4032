"""``swarmd``: run the daemon (and optionally its workers), or ``swarmd worker``: one worker alone.

    swarmd [--workers N] [--config FILE] [--data-dir DIR] [--redis-url URL]
    swarmd worker [--config FILE] [--data-dir DIR] [--redis-url URL] [--burst] [--name NAME]

``python -m swarmd`` is the same command; the daemon's supervisor starts its
workers as ``python -m swarmd worker --name ...``.  Redis: see
:func:`swarmd.cli.common.redis_url` (the daemon skips ``<data dir>/redis.url``,
which it writes).  Exit codes: 0 stopped cleanly, 2 bad config or arguments,
3 Redis unreachable.
"""

from __future__ import annotations

import argparse

from swarmd.api.server import ApiServer
from swarmd.cli.common import REDIS_URL_HELP, Parser, add_global_flags, ping, redis_url, run
from swarmd.config import load_config
from swarmd.daemon.redis_server import read_url_file
from swarmd.paths import data_dir, db_path
from swarmd.daemon.main import run_daemon
from swarmd.errors import EXIT_RULE, BadInput
from swarmd.logs import configure as configure_logs
from swarmd.workers.main import run_worker

#: Flags of ``swarmd`` and ``swarmd worker``, before or after ``worker``: (option strings, add_argument keywords).
GLOBAL_FLAGS = [
    (("--config",), {"help": "llm_config.yaml (default: $SWARMD_CONFIG, ./llm_config.yaml, the one shipped in "
                             "the package)"}),
    (("--data-dir",), {"help": "data directory (default: $SWARMD_DATA_DIR, $STATE_DIRECTORY under systemd, else "
                               "~/.local/share/swarmd)"}),
    (("--redis-url",), {"help": REDIS_URL_HELP}),
    (("-v", "--verbose"), {"action": "count", "default": 0,
                           "help": "log lines on stderr too (they always go to the log file; -vv: DEBUG)"}),
]

EPILOG = """\
examples:
  swarmd                             # daemon + cores/n_threads workers + its own Redis (no Redis URL given)
  swarmd --workers 1                 # daemon + one worker
  swarmd worker --redis-url redis://:PASSWORD@host:6379/0   # an extra worker on another host
signals: SIGTERM stops intake and exits cleanly (running jobs finish); SIGHUP reloads the
  config (the HTTP API serves it at once) and restarts the supervised workers, each after its
  current job
""" + EXIT_RULE + """
  (swarmd: 0 stopped cleanly, 2 bad config or arguments, 3 Redis unreachable)"""


def build_parser() -> argparse.ArgumentParser:
    """The ``swarmd`` argument parser (the daemon, and its ``worker`` subcommand)."""
    parser = Parser(
        prog="swarmd", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="The swarmd daemon: reads objectives pushed with `swarmctl submit`, dispatches them to "
                    "RQ workers that route every LLM call through cheap tiers first, and persists results "
                    "and costs in <data-dir>/memory.db. Logs to <data-dir>/daemon_hybrid.log. Without a Redis "
                    "URL it starts its own redis-server (unix socket in the data dir); a configured Redis that "
                    "answers without a password is refused unless daemon.allow_unauthenticated_redis: true.")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="start and supervise N local worker processes (default: the cores divided by the "
                             "embedded model's n_threads, at least 1; 0: none, workers run elsewhere)")
    parser.set_defaults(func=cmd_daemon)
    for names, kwargs in GLOBAL_FLAGS:
        parser.add_argument(*names, **kwargs)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    worker = sub.add_parser("worker", help="run one worker alone (e.g. on another host)",
                            description="One RQ worker in the foreground: it loads the router (and the embedded "
                                        "model) once, then runs objectives from the daemon's queues until "
                                        "SIGTERM (the current job finishes first).")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument("--name", help="worker name (default host:pid)")
    worker.set_defaults(func=cmd_worker)
    add_global_flags(parser, GLOBAL_FLAGS)
    return parser


def cmd_daemon(args: argparse.Namespace) -> int:
    """``swarmd``: the daemon until SIGTERM (:func:`swarmd.daemon.main.run_daemon`),
    with the HTTP API beside it (:class:`swarmd.api.server.ApiServer`, started
    first: a refused ``api.listen`` is exit 2 before anything runs)."""
    if args.workers is not None and args.workers < 0:
        raise BadInput(f"--workers must be >= 0, found {args.workers}")
    url = redis_url(args, daemon=True)
    config = load_config(args.config)
    data = data_dir(args.data_dir)
    api = ApiServer(config, data, db_path(data, config.storage.db), lambda: url or read_url_file(data))
    return run_daemon(args.config, args.data_dir, url, args.workers, verbose=args.verbose, services=[api])


def cmd_worker(args: argparse.Namespace) -> int:
    """``swarmd worker``: one worker in the foreground (:func:`swarmd.workers.main.run_worker`),
    after checking that its Redis answers (else exit 3)."""
    configure_logs(max(1, args.verbose), None, "INFO")   # a worker's stderr is its log (worker-N.log under swarmd)
    url = redis_url(args)
    ping(url).close()
    return run_worker(url, args.config, burst=args.burst, name=args.name, data_dir=args.data_dir)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``swarmd``; returns the exit code (:mod:`swarmd.errors`)."""
    return run(build_parser(), argv)
