"""``swarmctl api token [--rotate]``: the HTTP API's bearer token (:mod:`swarmd.daemon.api_token`)."""

from __future__ import annotations

import argparse

from swarmd.daemon.api_token import ensure_token, rotate_token, token_path
from swarmd.cli.common import err
from swarmd.errors import EXIT_OK
from swarmd.paths import data_dir


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``api token`` to swarmctl's subcommands."""
    api = sub.add_parser("api", help="the HTTP API's access token",
                         description="The HTTP API (served by swarmd; its URL is in <data dir>/api.url) takes "
                                     "'Authorization: Bearer TOKEN' with the token in <data dir>/api.token.")
    api_sub = api.add_subparsers(dest="api_command", metavar="COMMAND", required=True)
    token = api_sub.add_parser("token", help="print the token (created if missing); --rotate replaces it",
                               description="Print the API token of the data directory on stdout. --rotate "
                                           "writes a new one (mode 0600); the running API refuses the old "
                                           "one from then on.")
    token.add_argument("--rotate", action="store_true", help="replace the token with a new one")
    token.set_defaults(func=cmd_token)


def cmd_token(args: argparse.Namespace) -> int:
    """Print the token of ``--data-dir`` (created if missing; replaced with ``--rotate``)."""
    data = data_dir(args.data_dir)
    token = rotate_token(data) if args.rotate else ensure_token(data)
    if args.rotate:
        err.print(f"new token written to {token_path(data)}")
    print(token)
    return EXIT_OK
