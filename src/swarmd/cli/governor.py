"""``swarmctl policy check | run | audit | approvals | approve | reject``: the governor's commands.

``policy check`` judges actions exactly as the daemon would, without running
them; ``policy run`` judges them and runs the allowed ones exactly as a
worker would (same sandbox, same limits), so an operator sees what a policy
really lets through; ``audit`` reads the audit log in the daemon's store; ``approvals``,
``approve`` and ``reject`` decide agent actions the governor answered with
``ask`` (parked as ``awaiting_approval``, see :mod:`swarmd.agent.approvals`):
``approve`` runs the action (the governor judges it again first: a ``deny``
still wins) and resumes the objective; ``reject`` resumes it with the action
refused, which counts as a deny.  Both are audited.  Unattended parks become
a deny after ``governor.approval_timeout_s``.

A new ``policy`` subcommand: one more ``policy_sub.add_parser(...)`` in
:func:`register` with its ``cmd_*`` function here.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from swarmd.agent import approvals
from swarmd.cli.common import add_redis_url, connect, err, existing_db, out, print_fields, table
from swarmd.config import load_config
from swarmd.errors import EXIT_OK, BadInput, Unreachable
from swarmd.governor.audit import query_audit
from swarmd.governor.execute import run_actions
from swarmd.governor.governor import TOOL_ARGS, Governor
from swarmd.governor.policy import PolicyError, load_policy
from swarmd.governor.workspace import WorkspaceError, commit, discard, iter_changes, make_copy, sync
from swarmd.jsonl import read_jsonl
from swarmd.agent.changes import CHANGESET_TOOL

#: The ``args`` key that ``policy check --arg`` fills, per tool.
_ARG_KEY = {"shell": "command", "read_file": "path", "write_file": "path", "http_get": "url"}

CHECK_EPILOG = """\
examples:
  # one shell command, judged against the config's policy with the current directory as workspace
  %(prog)s --tool shell --arg "git log --oneline | head -5"
  # a read outside the workspace, machine-readable answer
  %(prog)s --tool read_file --arg /etc/passwd --json
  # a write (content is irrelevant to the decision) in a chosen workspace
  %(prog)s --tool write_file --arg notes.md --workspace /srv/objectives/42
  # a URL (judged by name: no DNS while deciding; addresses are checked when it runs)
  %(prog)s --tool http_get --arg https://example.com/
  # many actions: one JSON object per line, {"id", "tool", "args"}
  #   {"id": "a1", "tool": "shell", "args": {"command": "ls -la"}}
  #   {"id": "a2", "tool": "http_get", "args": {"url": "http://169.254.169.254/"}}
  %(prog)s --file actions.jsonl

output: decision (allow | deny | ask), the id of the rule that decided (policy rule ids
come from policy.yaml; shell.*, files.*, url.*, default.* ids are built in, see
docs/governor.md) and the reason. With --file: one JSON line per action.
exit codes: 0 judged (whatever the decision), 2 bad input (policy or JSONL line).
"""

RUN_EPILOG = """\
examples:
  # judge and run a file of actions in a scratch workspace (one JSON object per line: {"id", "tool", "args"})
  %(prog)s --file actions.jsonl --workspace /tmp/scratch
  %(prog)s --file actions.jsonl --workspace /tmp/scratch --json    # one JSON result per line

Allowed actions run exactly as a worker runs them: in the objective's own copy of the workspace,
shell commands in the bubblewrap sandbox (see `swarmctl status` and docs/governor.md), with the
policy's limits; asked and denied ones never run. Result fields: id, decision, rule, reason, ran,
exit_code, output (cut), confinement. At the end the change set (copy vs workspace) is judged and
applied as a worker applies it: rows {"change": applied|refused|pending|error, "op", "path",
"decision", "rule", "reason"}; refused ones (git metadata, special files, symlinks out...) never
reach the workspace, pending ones (ask: deleting tracked files, protected paths) are not applied.
exit codes: 0 every action judged (whatever the decisions), 2 bad input (policy, workspace, JSONL line).
"""

AUDIT_EPILOG = """\
examples:
  %(prog)s                                         # the daemon's memory.db (swarmctl --data-dir DIR)
  %(prog)s --objective obj-42 --decision deny
  %(prog)s --db memory.db                          # newest decisions first
  %(prog)s --db memory.db --objective obj-42 --decision deny
  %(prog)s --db memory.db --json --limit 20        # one JSON object per line
"""

APPROVALS_EPILOG = """\
examples:
  %(prog)s                 # id, tool, arguments, rule, reason, age
  %(prog)s --json          # one JSON object per line
then: swarmctl approve ID   or   swarmctl reject ID
exit codes: 0 ok, 2 bad input (unknown id, not awaiting approval), 3 Redis unreachable.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``policy check``, ``policy run``, ``audit``, ``approvals``, ``approve`` and ``reject`` to swarmctl's
    subcommands."""
    pol = sub.add_parser("policy", help="check actions against the governor policy",
                         description="Governor policy tools.")
    policy_sub = pol.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    chk = _policy_command(policy_sub, "check", "judge one action (--tool/--arg) or a JSONL file of actions (--file)",
                          "Judge actions with the governor exactly as the daemon would, without running them.",
                          CHECK_EPILOG)
    chk.add_argument("--workspace", default=None, help="workspace directory (default: current directory)")
    chk.add_argument("--tool", choices=sorted(TOOL_ARGS), help="tool of a single action")
    chk.add_argument("--arg", help="the command, path or URL of a single action")
    chk.add_argument("--file", help="JSONL file of actions: {\"id\", \"tool\", \"args\"} per line")
    chk.add_argument("--json", action="store_true", help="print JSON instead of text")
    chk.set_defaults(func=cmd_check)
    run = _policy_command(policy_sub, "run", "judge a JSONL file of actions and run the allowed ones as a worker would",
                          "Judge each action and run the allowed ones in the sandbox, exactly as a worker does.",
                          RUN_EPILOG)
    run.add_argument("--workspace", required=True, help="workspace directory the actions run in")
    run.add_argument("--file", required=True, help="JSONL file of actions: {\"id\", \"tool\", \"args\"} per line")
    run.add_argument("--json", action="store_true", help="one JSON result per line instead of a table")
    run.add_argument("--commit", metavar="MESSAGE", help="commit the applied change set in the workspace's git "
                                                          "repository with this message (as swarmd, hooks off)")
    run.set_defaults(func=cmd_run)

    aud = sub.add_parser(
        "audit", help="show governor decisions from the audit log",
        description="List decisions recorded in the audit_log table, newest first.",
        epilog=AUDIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    aud.add_argument("--db", help="SQLite database (default: the daemon's store, <data dir>/memory.db; "
                                  "data dir from swarmctl --data-dir, $SWARMD_DATA_DIR, ...)")
    aud.add_argument("--objective", help="only this objective id")
    aud.add_argument("--decision", choices=["allow", "deny", "ask"], help="only this decision")
    aud.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    aud.add_argument("--json", action="store_true", help="one JSON object per line")
    aud.set_defaults(func=cmd_audit)

    lst = sub.add_parser(
        "approvals", help="list agent actions awaiting approval (the governor said ask)",
        description="List objectives parked as awaiting_approval, oldest first: the proposed tool action, "
                    "the governor rule that asked, its reason, and how long it has waited.",
        epilog=APPROVALS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    add_redis_url(lst)
    lst.set_defaults(func=cmd_approvals)
    for name, verb in (("approve", "run the parked action and resume the objective"),
                       ("reject", "refuse the parked action (counts as a deny) and resume the objective")):
        p = sub.add_parser(name, help=verb, description=f"{name.capitalize()}: {verb}. Audited.")
        p.add_argument("id", help="objective id (see swarmctl approvals)")
        p.add_argument("--by", help="who decides, for the audit log (default: user@host)")
        add_redis_url(p)
        p.set_defaults(func=cmd_resolve, resolution=name)


def _policy_command(policy_sub: argparse._SubParsersAction, name: str, help: str, description: str,
                    epilog: str) -> argparse.ArgumentParser:
    """One ``swarmctl policy NAME`` parser, with ``--policy``."""
    p = policy_sub.add_parser(name, help=help, description=description, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default=None,
                   help="policy file (default: the config's governor.policy, beside the config file: the daemon's "
                        "policy; for the shipped config the policy shipped in the package)")
    return p


# --------------------------------------------------------------------------- policy check


def policy_file(args: argparse.Namespace) -> Path:
    """``--policy``, else the policy the daemon of ``--config`` loads
    (:meth:`swarmd.config.GovernorConfig.policy_path`)."""
    if args.policy:
        return Path(args.policy)
    config = load_config(args.config)
    return config.policy_path


def cmd_check(args: argparse.Namespace) -> int:
    """``policy check``: judge one action or a JSONL file of them and print the decisions."""
    try:
        policy = load_policy(policy_file(args))
    except PolicyError as exc:
        raise BadInput(f"invalid policy\n{exc}") from None
    workspace = os.path.abspath(args.workspace or os.getcwd())
    if not os.path.isdir(workspace):
        raise BadInput(f"workspace {workspace!r} is not a directory")
    gov = Governor(policy)
    if args.file:
        if args.tool or args.arg:
            raise BadInput("use either --file or --tool/--arg, not both")
        for action in read_jsonl(args.file, _action, allow_empty=True):
            d = gov.decide(action["tool"], action["args"], workspace)
            print(json.dumps({"id": action["id"], "decision": d.decision, "rule": d.rule, "reason": d.reason}))
        return EXIT_OK
    if not args.tool or args.arg is None:
        raise BadInput("give --tool and --arg (or --file); see --help for examples")
    tool_args = {_ARG_KEY[args.tool]: args.arg}
    if args.tool == "write_file":
        tool_args["content"] = ""
    d = gov.decide(args.tool, tool_args, workspace)
    if args.json:
        print(json.dumps({"tool": args.tool, "args": tool_args, "decision": d.decision, "rule": d.rule,
                          "reason": d.reason}))
    else:
        print_fields([("decision", d.decision), ("rule", d.rule), ("reason", d.reason)])
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``policy run``: judge every action of ``--file`` and run the allowed ones
    like a worker: in the objective's own copy of ``--workspace``
    (:func:`swarmd.governor.workspace.make_copy`), then apply the change set to
    the workspace through the policy (:func:`swarmd.governor.workspace.sync`);
    print one result per action, then one row per change."""
    try:
        policy = load_policy(policy_file(args))
    except PolicyError as exc:
        raise BadInput(f"invalid policy\n{exc}") from None
    workspace = os.path.abspath(args.workspace)
    if not os.path.isdir(workspace):
        raise BadInput(f"workspace {workspace!r} is not a directory")
    actions = list(read_jsonl(args.file, _action, allow_empty=True))  # every line checked before anything runs
    gov = Governor(policy)
    if not gov.confinement.available:
        err(f"warning: {gov.confinement.reason}")
    with tempfile.TemporaryDirectory(prefix="swarmd-policy-run-") as tmp:
        try:
            ac = make_copy(workspace, os.path.join(tmp, "copy"), policy)
        except (WorkspaceError, OSError) as exc:
            raise BadInput(f"cannot copy workspace {workspace!r}: {exc}") from None
        try:
            results = run_actions(gov, actions, ac.tree)
            if args.json:
                for r in results:
                    print(json.dumps(r))
            else:
                t = table("id", "decision", "rule", "ran", "exit", "confinement", "output", title="policy run")
                for r in results:
                    first = (r["output"] or r["error"] or "").strip().splitlines()
                    t.add_row(str(r["id"]), r["decision"], r["rule"], "yes" if r["ran"] else "no",
                              "" if r["exit_code"] is None else str(r["exit_code"]), r["confinement"],
                              (first[0][:60] if first else ""))
                out.print(t)
            res = sync(ac, policy)
            if args.commit and res["applied"]:
                res["commit"] = commit(ac, sorted({c["path"] for c in res["applied"]}), args.commit)
            changes = list(iter_changes(res))
        finally:
            discard(ac)
    if args.json:
        for c in changes:
            print(json.dumps(c))
        return EXIT_OK
    if changes:
        t = table("change", "op", "path", "decision", "rule", "reason", title="change set (applied to the workspace)")
        for c in changes:
            t.add_row(c["change"], c.get("op", ""), c["path"], c.get("decision", ""), c.get("rule", ""),
                      (c.get("reason") or c.get("error") or "")[:80])
        out.print(t)
    return EXIT_OK


def _action(obj: dict[str, Any]) -> dict[str, Any]:
    """One ``{"id", "tool", "args"}`` line of ``policy check --file``; raises
    ``ValueError`` saying what is wrong with it."""
    missing = [k for k in ("id", "tool", "args") if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    if obj["tool"] not in TOOL_ARGS:
        raise ValueError(f"tool must be one of {', '.join(sorted(TOOL_ARGS))}; found {obj['tool']!r}")
    tool_args = obj["args"]
    if not isinstance(tool_args, dict) or set(tool_args) != TOOL_ARGS[obj["tool"]]:
        raise ValueError(f"args for {obj['tool']} must be an object with exactly: "
                         f"{', '.join(sorted(TOOL_ARGS[obj['tool']]))}")
    if not all(isinstance(v, str) for v in tool_args.values()):
        raise ValueError("args values must be strings")
    return obj


# --------------------------------------------------------------------------- audit


def cmd_audit(args: argparse.Namespace) -> int:
    """``audit``: print rows of ``audit_log``, newest first (a table, or JSON lines)."""
    db = existing_db(args)
    try:
        rows = query_audit(db, args.objective, args.decision, args.limit)
    except sqlite3.Error as exc:
        raise BadInput(f"cannot read audit log from {db}: {exc}") from None
    if args.json:
        for r in rows:
            print(json.dumps({"id": r.id, "ts": r.ts, "objective_id": r.objective_id, "tool": r.tool,
                              "args": r.args, "decision": r.decision, "rule": r.rule, "reason": r.reason}))
        return EXIT_OK
    decisions = table("time", "objective", "decision", "tool", "rule", "args", "reason")
    for r in rows:
        decisions.add_row(r.ts, r.objective_id or "-", r.decision, r.tool, r.rule,
                          json.dumps(r.args, ensure_ascii=False)[:100], r.reason)
    out.print(decisions)
    return EXIT_OK


# --------------------------------------------------------------------------- approvals


def _age(seconds: float) -> str:
    """``42s``, ``17m`` or ``3h05m``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def cmd_approvals(args: argparse.Namespace) -> int:
    """``approvals``: print parked objectives, oldest first."""
    client = connect(args)
    try:
        parked = approvals.list_parked(client)
    except RedisError as exc:
        raise Unreachable(f"reading approvals failed: {exc}") from None
    now = time.time()
    rows = [{"id": rec["id"], "tool": rec["tool"], "args": rec["args"], "rule": rec["rule"],
             "reason": rec["reason"], "age_s": round(approvals.age_s(rec, now), 1),
             "action": rec["objective"].get("action"), "parked_at": rec["parked_at"]} for rec in parked]
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        err.print("no objectives awaiting approval")
        return EXIT_OK
    waiting = table("id", "tool", "args", "rule", "reason", "age")
    diffs = []
    for row in rows:
        shown = row["args"]
        if row["tool"] == CHANGESET_TOOL:   # a change set: list the changes, the diff below the table
            shown = " ".join(f"{c['op']}:{c['path']}" for c in row["args"].get("changes", []))
            diffs.append((row["id"], row["args"].get("diff", "")))
        waiting.add_row(row["id"], row["tool"], (shown if isinstance(shown, str) else
                                                 json.dumps(shown, ensure_ascii=False))[:100],
                        row["rule"], row["reason"][:120], _age(row["age_s"]))
    out.print(waiting)
    for oid, diff in diffs:
        out.print(f"--- {oid}: changes awaiting approval\n{diff}", markup=False, highlight=False)
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace) -> int:
    """``approve`` / ``reject``: decide one parked objective and queue it again."""
    config = load_config(args.config)
    client = connect(args)
    by = args.by or f"{getpass.getuser()}@{socket.gethostname()}"
    try:
        rec = approvals.resolve(client, args.id, args.resolution, by, config)
    except approvals.NotParked as exc:
        raise BadInput(f"{exc} (see swarmctl approvals)") from None
    except RedisError as exc:
        raise Unreachable(f"{args.resolution} failed: {exc}") from None
    verb = "approved" if args.resolution == "approve" else "rejected"
    out.print(f"{verb} {args.id}: {rec['tool']} {json.dumps(rec['args'], ensure_ascii=False)[:200]}; "
              f"queued again as job {rec['job_id']}", markup=False)
    return EXIT_OK
