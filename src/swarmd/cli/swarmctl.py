"""``swarmctl``: the root of the swarmctl command tree.

:data:`GROUPS` lists the command-group modules; each has a
``register(subparsers)`` that adds its commands, and every leaf command sets
``func`` (namespace -> exit code).  :func:`main` parses and runs one command
through :func:`swarmd.cli.common.run`, which maps errors to exit codes.
The global flags (:data:`GLOBAL_FLAGS`) are accepted before and after the
subcommand.  Without ``--config`` (or ``$SWARMD_CONFIG``) a command uses the
config the daemon of its data directory recorded (``config.path``).  Log
lines (loguru) go to ``<data dir>/swarmctl.log`` when the data directory
exists, and to stderr only with ``-v`` (:func:`setup`).
"""

from __future__ import annotations

import argparse
import os

from swarmd import telemetry
from swarmd.cli import api, control, costs, governor, memory, objectives, traces
from swarmd.cli.common import Parser, add_global_flags, run
from swarmd.errors import EXIT_RULE
from swarmd.logs import configure as configure_logs
from swarmd.paths import data_dir, read_config_path

#: Command groups, in the order ``swarmctl --help`` lists them.
GROUPS = (objectives, control, costs, governor, memory, traces, api)

DESCRIPTION = ("Control swarmd: route LLM calls through cheap tiers first, check agent actions, "
               "and see what it all cost.")

#: Flags every swarmctl command takes, before or after the subcommand: (option strings, add_argument keywords).
GLOBAL_FLAGS = [
    (("--config",), {"help": "llm_config.yaml to use (default: $SWARMD_CONFIG, <data dir>/config.path written by "
                             "the running daemon, ./llm_config.yaml, the one shipped in the package)"}),
    (("--data-dir",), {"help": "data directory (default: $SWARMD_DATA_DIR, $STATE_DIRECTORY under systemd, "
                               "else ~/.local/share/swarmd); commands that only read it never create it"}),
    (("-v", "--verbose"), {"action": "count", "default": 0,
                           "help": "log lines on stderr too (-v: INFO, -vv: DEBUG, llama.cpp's included)"}),
]

#: File (under the data directory) of swarmctl's log lines.
LOG_FILE = "swarmctl.log"


def build_parser() -> argparse.ArgumentParser:
    """The ``swarmctl`` argument parser with every subcommand of :data:`GROUPS`."""
    parser = Parser(prog="swarmctl", description=DESCRIPTION, epilog=EXIT_RULE,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    for names, kwargs in GLOBAL_FLAGS:
        parser.add_argument(*names, **kwargs)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    add_global_flags(parser, GLOBAL_FLAGS)
    return parser


def setup(args: argparse.Namespace) -> None:
    """Before any command: the config (``--config``, else ``$SWARMD_CONFIG``,
    else the one the daemon of the data directory recorded in ``config.path``,
    :func:`swarmd.paths.read_config_path`; else :func:`swarmd.config.default_config_path`
    decides) and the log lines: to ``<data dir>/swarmctl.log`` (INFO; only when that directory
    exists and is writable: a command that reads never creates it) and, with
    ``-v``, to stderr (:func:`swarmd.logs.configure`)."""
    data = data_dir(args.data_dir, create=False)
    if getattr(args, "config", None) is None and not os.environ.get("SWARMD_CONFIG"):
        args.config = read_config_path(data)
    log_file = data / LOG_FILE
    writable = os.access(log_file if log_file.exists() else data, os.W_OK) if data.is_dir() else False
    try:
        configure_logs(args.verbose, log_file if writable else None, "INFO", rotation="5 MB", retention=2)
    except OSError:
        configure_logs(args.verbose, None, "INFO")
    telemetry.setup("swarmctl")       # traces only when OTEL_* variables ask for them


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``swarmctl``; returns the exit code (:mod:`swarmd.errors`)."""
    return run(build_parser(), argv, setup=setup)
