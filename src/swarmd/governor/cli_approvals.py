"""``swarmctl approvals`` / ``approve ID`` / ``reject ID``: decide parked actions.

An ``agent`` objective whose next tool action the governor answered with
``ask`` waits as ``awaiting_approval`` (see :mod:`swarmd.workers.parking`).
``approvals`` lists them; ``approve`` runs the action (the governor judges it
again first: a ``deny`` still wins) and resumes the objective; ``reject``
resumes it with the action refused, which counts as a deny.  Both are
audited.  Unattended parks become a deny after ``governor.approval_timeout_s``.

Exit codes: 0 ok, 2 bad input (unknown id, not awaiting approval), 3 Redis
unreachable.  ``register(subparsers)`` adds the three commands to ``swarmctl``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
import time
from typing import Any

APPROVALS_EPILOG = """\
examples:
  %(prog)s                 # id, tool, arguments, rule, reason, age
  %(prog)s --json          # one JSON object per line
then: swarmctl approve ID   or   swarmctl reject ID
"""


def register(subparsers: Any) -> None:
    """Add ``approvals``, ``approve`` and ``reject`` to an argparse ``subparsers``
    object of ``swarmctl`` (whose parser has ``--config`` and ``--data-dir``).
    Each sets ``func`` (namespace -> exit code; raises ``swarmd.cli.BadInput``
    or ``swarmd.cli.Unreachable``, which ``swarmctl`` maps to 2 and 3)."""
    lst = subparsers.add_parser(
        "approvals", help="list agent actions awaiting approval (the governor said ask)",
        description="List objectives parked as awaiting_approval, oldest first: the proposed tool action, "
                    "the governor rule that asked, its reason, and how long it has waited.",
        epilog=APPROVALS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.add_argument("--redis-url", help="Redis of the daemon (default: from --data-dir, $REDIS_URL, config)")
    lst.set_defaults(func=cmd_approvals)
    for name, verb in (("approve", "run the parked action and resume the objective"),
                       ("reject", "refuse the parked action (counts as a deny) and resume the objective")):
        p = subparsers.add_parser(name, help=verb, description=f"{name.capitalize()}: {verb}. Audited.")
        p.add_argument("id", help="objective id (see swarmctl approvals)")
        p.add_argument("--by", help="who decides, for the audit log (default: user@host)")
        p.add_argument("--redis-url", help="Redis of the daemon (default: from --data-dir, $REDIS_URL, config)")
        p.set_defaults(func=cmd_resolve, resolution=name)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def cmd_approvals(args: argparse.Namespace) -> int:
    """``approvals``: print parked objectives; returns 0."""
    from redis.exceptions import RedisError

    from swarmd.cli import Unreachable, _redis
    from swarmd.workers import parking

    client = _redis(args)
    try:
        parked = parking.list_parked(client)
    except RedisError as exc:
        raise Unreachable(f"reading approvals failed: {exc}") from None
    now = time.time()
    for rec in parked:
        row = {"id": rec["id"], "tool": rec["tool"], "args": rec["args"], "rule": rec["rule"],
               "reason": rec["reason"], "age_s": round(parking.age_s(rec, now), 1),
               "action": rec["objective"].get("action"), "parked_at": rec["parked_at"]}
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            shown = json.dumps(rec["args"], ensure_ascii=False)
            print(f"{rec['id']}  {rec['tool']:10}  {shown[:100]}  {rec['rule']}  {rec['reason'][:120]}  "
                  f"{_age(row['age_s'])}")
    if not parked and not args.json:
        print("no objectives awaiting approval", file=sys.stderr)
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    """``approve`` / ``reject``: decide one parked objective and queue it again; returns 0."""
    from redis.exceptions import RedisError

    from swarmd.cli import BadInput, Unreachable, _redis
    from swarmd.config import load_config
    from swarmd.workers import parking

    config = load_config(args.config)
    client = _redis(args)
    by = args.by or f"{getpass.getuser()}@{socket.gethostname()}"
    try:
        rec = parking.resolve(client, args.id, args.resolution, by, config)
    except parking.NotParked as exc:
        raise BadInput(f"{exc} (see swarmctl approvals)") from None
    except RedisError as exc:
        raise Unreachable(f"{args.resolution} failed: {exc}") from None
    verb = "approved" if args.resolution == "approve" else "rejected"
    print(f"{verb} {args.id}: {rec['tool']} {json.dumps(rec['args'], ensure_ascii=False)[:200]}; "
          f"queued again as job {rec['job_id']}")
    return 0
