"""``swarmctl``: the root of the swarmctl command tree.

:data:`GROUPS` lists the command-group modules; each has a
``register(subparsers)`` that adds its commands, and every leaf command sets
``func`` (namespace -> exit code).  :func:`main` parses and runs one command
through :func:`swarmd.cli.common.run`, which maps errors to exit codes.
"""

from __future__ import annotations

import argparse

from swarmd.cli import api, control, costs, governor, memory, objectives, traces
from swarmd.cli.common import run

#: Command groups, in the order ``swarmctl --help`` lists them.
GROUPS = (objectives, control, costs, governor, memory, traces, api)

DESCRIPTION = ("Control swarmd: route LLM calls through cheap tiers first, check agent actions, "
               "and see what it all cost.")


def build_parser() -> argparse.ArgumentParser:
    """The ``swarmctl`` argument parser with every subcommand of :data:`GROUPS`."""
    parser = argparse.ArgumentParser(
        prog="swarmctl", description=DESCRIPTION,
        epilog="Exit codes: 0 ok, 1 unresolved answer, 2 bad input, 3 daemon unreachable.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="llm_config.yaml to use (default: $SWARMD_CONFIG, ./llm_config.yaml)")
    parser.add_argument("--data-dir", help="data directory (default: $SWARMD_DATA_DIR, $STATE_DIRECTORY "
                                           "under systemd, else ~/.local/share/swarmd)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``swarmctl``; returns the exit code (:mod:`swarmd.errors`)."""
    return run(build_parser(), argv)
