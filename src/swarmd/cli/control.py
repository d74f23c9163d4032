"""``swarmctl list | cancel | retry``: see and steer objectives (:mod:`swarmd.daemon.control`).

``list`` reads the store in the data directory; ``cancel`` and ``retry`` talk to
the daemon through its Redis (:func:`swarmd.cli.common.connect`) and read the
store when it is there.  The HTTP API calls the same functions.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from datetime import datetime, timezone

from swarmd.cli.common import add_redis_url, connect, default_db, out, table
from swarmd.config import load_config
from swarmd.costs.report import parse_since
from swarmd.daemon import control
from swarmd.errors import EXIT_OK, BadInput
from swarmd.objectives import STATES
from swarmd.paths import data_dir
from swarmd.daemon.store import Store

#: Columns of ``swarmctl list`` and of ``submit --wait``'s table (keys of the store's record).
COLUMNS = ("id", "state", "action", "answer", "tier", "cost_usd", "submitted_at")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``list``, ``cancel`` and ``retry`` to swarmctl's subcommands."""
    lst = sub.add_parser("list", help="objectives, newest first, filtered by state, action and time",
                         description="Objectives from the store in the data directory, newest first. --json "
                                     "prints one JSON object per line (the store's columns; no attempts).")
    lst.add_argument("--state", choices=STATES, help="only objectives in this state")
    lst.add_argument("--action", help="only objectives of this action")
    lst.add_argument("--since", help="submitted since: 30m, 12h, 7d, 2w ago, or YYYY-MM-DD[ HH:MM] (UTC)")
    lst.add_argument("--limit", type=int, default=50, help="at most this many (1-1000, default 50)")
    lst.add_argument("--json", action="store_true", help="JSON lines")
    lst.set_defaults(func=cmd_list)

    cancel = sub.add_parser("cancel", help="cancel an objective that has not ended",
                            description="A queued objective becomes cancelled and never runs; a running one is "
                                        "stopped at its next check: a label objective before its next escalation, an agent one "
                                        "before its next step or tool action (its change set not applied); "
                                        "one awaiting approval is cancelled "
                                        "(it can no longer be approved). Exit 2 for an unknown id or one that "
                                        "has ended.")
    cancel.add_argument("id", help="objective id")
    add_redis_url(cancel)
    cancel.set_defaults(func=cmd_cancel)

    retry = sub.add_parser("retry", help="run a failed, unresolved or cancelled objective again",
                           description="Submit the objective again as a new one whose retry_of names it. The "
                                       "new id is derived from the old one, so retrying twice submits it once. "
                                       "Prints the new id.")
    retry.add_argument("id", help="objective id")
    add_redis_url(retry)
    retry.set_defaults(func=cmd_retry)


def open_store(args: argparse.Namespace) -> Store | None:
    """The daemon's store for ``args`` (``--config``, ``--data-dir``), or
    ``None`` when that file does not exist (no daemon ran there)."""
    path = default_db(args.config, args.data_dir)
    return Store(path) if os.path.exists(path) else None


def cmd_list(args: argparse.Namespace) -> int:
    """Print objectives from the store (:meth:`Store.page`), as a table or JSON lines."""
    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    if not 1 <= args.limit <= 1000:
        raise BadInput(f"--limit must be 1-1000, found {args.limit}")
    store = open_store(args)
    if store is None:
        raise BadInput(f"database {default_db(args.config, args.data_dir)!r} does not exist "
                       "(no daemon has run with this data directory)")
    try:
        rows, _next = store.page(state=args.state, action=args.action, since=since, limit=args.limit)
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_objectives(rows)
    return EXIT_OK


def print_objectives(rows: list[dict]) -> None:
    """Objective records as a table (:data:`COLUMNS`)."""
    grid = table(*COLUMNS)
    for row in rows:
        cost = row.get("cost_usd")
        ts = row.get("submitted_at")
        grid.add_row(row["id"], str(row.get("state")), str(row.get("action") or ""),
                     "" if row.get("answer") is None else str(row["answer"]), str(row.get("tier") or ""),
                     "" if cost is None else f"{cost:.6f}",
                     "" if not ts else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))
    out.print(grid)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel one objective (:func:`swarmd.daemon.control.cancel`); prints what it was."""
    config = load_config(args.config)
    client = connect(args)
    store = open_store(args)
    try:
        done = control.cancel(client, store, args.id, f"swarmctl ({_who()})", config,
                              data_dir(args.data_dir, create=False))
    finally:
        if store is not None:
            store.close()
    out.print(f"{done['id']}: cancelled (was {done['was']})"
              + (f"; stop sent to job {done['stopped_job']}" if done["stopped_job"] else ""))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    """Retry one objective (:func:`swarmd.daemon.control.retry`); prints the new id."""
    config = load_config(args.config)
    client = connect(args)
    store = open_store(args)
    try:
        done = control.retry(client, store, args.id, config)
    finally:
        if store is not None:
            store.close()
    print(done["id"])
    return EXIT_OK
