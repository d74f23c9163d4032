"""Command line for the governor: ``policy check`` and ``audit``.

``register(subparsers)`` adds both commands to an argparse subparsers object
(``swarmctl`` wires it in); ``python -m swarmd.governor.cli`` runs them alone.
Exit codes: 0 ok, 2 bad input (malformed policy, bad JSONL line, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from .audit import query_audit
from .governor import TOOL_ARGS, Governor
from .policy import PolicyError, load_policy

EXIT_OK, EXIT_BAD_INPUT = 0, 2

_ARG_KEY = {"shell": "command", "read_file": "path", "write_file": "path", "http_get": "url"}

CHECK_EPILOG = """\
examples:
  # one shell command, judged against ./policy.yaml with the current directory as workspace
  %(prog)s --tool shell --arg "git log --oneline | head -5"
  # a read outside the workspace, machine-readable answer
  %(prog)s --tool read_file --arg /etc/passwd --json
  # a write (content is irrelevant to the decision) in a chosen workspace
  %(prog)s --tool write_file --arg notes.md --workspace /srv/objectives/42
  # a URL (DNS is resolved for real unless the host is an IP literal)
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

AUDIT_EPILOG = """\
examples:
  %(prog)s                                         # the daemon's memory.db (swarmctl --data-dir DIR)
  %(prog)s --objective obj-42 --decision deny
  %(prog)s --db memory.db                          # newest decisions first
  %(prog)s --db memory.db --objective obj-42 --decision deny
  %(prog)s --db memory.db --json --limit 20        # one JSON object per line
"""


def register(subparsers: Any) -> None:
    """Add ``policy check`` and ``audit`` commands to an argparse ``subparsers`` object.

    Each leaf parser sets ``func`` (called with the parsed namespace, returns an exit code).
    """
    pol = subparsers.add_parser("policy", help="check actions against the governor policy",
                                description="Governor policy tools.")
    pol_sub = pol.add_subparsers(dest="policy_command", metavar="{check}")
    pol_sub.required = True
    chk = pol_sub.add_parser(
        "check", help="judge one action (--tool/--arg) or a JSONL file of actions (--file)",
        description="Judge actions with the governor exactly as the daemon would, without running them.",
        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    chk.add_argument("--policy", default="policy.yaml", help="policy file (default: ./policy.yaml)")
    chk.add_argument("--workspace", default=None, help="workspace directory (default: current directory)")
    chk.add_argument("--tool", choices=sorted(TOOL_ARGS), help="tool of a single action")
    chk.add_argument("--arg", help="the command, path or URL of a single action")
    chk.add_argument("--file", help="JSONL file of actions: {\"id\", \"tool\", \"args\"} per line")
    chk.add_argument("--json", action="store_true", help="print JSON instead of text")
    chk.set_defaults(func=cmd_check)

    aud = subparsers.add_parser(
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


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_check(ns: argparse.Namespace) -> int:
    """``policy check``: judge and print; returns the exit code."""
    try:
        policy = load_policy(ns.policy)
    except PolicyError as e:
        return _err(f"invalid policy\n{e}")
    workspace = os.path.abspath(ns.workspace or os.getcwd())
    if not os.path.isdir(workspace):
        return _err(f"workspace {workspace!r} is not a directory")
    gov = Governor(policy)
    if ns.file:
        if ns.tool or ns.arg:
            return _err("use either --file or --tool/--arg, not both")
        return _check_file(gov, ns.file, workspace)
    if not ns.tool or ns.arg is None:
        return _err("give --tool and --arg (or --file); see --help for examples")
    args = {_ARG_KEY[ns.tool]: ns.arg}
    if ns.tool == "write_file":
        args["content"] = ""
    d = gov.decide(ns.tool, args, workspace)
    if ns.json:
        print(json.dumps({"tool": ns.tool, "args": args, "decision": d.decision, "rule": d.rule, "reason": d.reason}))
    else:
        print(f"{d.decision}\nrule:   {d.rule}\nreason: {d.reason}")
    return EXIT_OK


def _check_file(gov: Governor, path: str, workspace: str) -> int:
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        return _err(f"cannot read {path}: {e.strerror or e}")
    items: list[tuple[Any, str, dict[str, Any]]] = []
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                return _err(f"{path}:{n}: not valid JSON ({e})")
            problem = _validate_action(obj)
            if problem:
                return _err(f"{path}:{n}: {problem}")
            items.append((obj["id"], obj["tool"], obj["args"]))
    for ident, tool, args in items:
        d = gov.decide(tool, args, workspace)
        print(json.dumps({"id": ident, "decision": d.decision, "rule": d.rule, "reason": d.reason}))
    return EXIT_OK


def _validate_action(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "expected a JSON object with keys id, tool, args"
    missing = [k for k in ("id", "tool", "args") if k not in obj]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if obj["tool"] not in TOOL_ARGS:
        return f"tool must be one of {', '.join(sorted(TOOL_ARGS))}; found {obj['tool']!r}"
    args = obj["args"]
    if not isinstance(args, dict) or set(args) != TOOL_ARGS[obj["tool"]]:
        want = ", ".join(sorted(TOOL_ARGS[obj["tool"]]))
        return f"args for {obj['tool']} must be an object with exactly: {want}"
    if not all(isinstance(v, str) for v in args.values()):
        return "args values must be strings"
    return None


def default_db(config_path: str | None, data_dir: str | None) -> str:
    """The daemon's store: ``storage.db`` of the config, under the data directory
    (:func:`swarmd.paths.data_dir`: ``data_dir``, ``$SWARMD_DATA_DIR``, ...)."""
    from swarmd.config import ConfigError, load_config
    from swarmd.paths import data_dir as resolve_data_dir
    from swarmd.paths import db_path
    try:
        configured = load_config(config_path).storage.db
    except ConfigError:
        configured = "memory.db"
    return str(db_path(resolve_data_dir(data_dir), configured))


def cmd_audit(ns: argparse.Namespace) -> int:
    """``audit``: print rows of ``audit_log``; returns the exit code."""
    db = ns.db or default_db(getattr(ns, "config", None), getattr(ns, "data_dir", None))
    if not os.path.exists(db):
        return _err(f"database {db!r} does not exist")
    try:
        rows = query_audit(db, ns.objective, ns.decision, ns.limit)
    except Exception as e:  # noqa: BLE001 - sqlite errors on a foreign file
        return _err(f"cannot read audit log from {db}: {e}")
    for r in rows:
        if ns.json:
            print(json.dumps({"id": r.id, "ts": r.ts, "objective_id": r.objective_id, "tool": r.tool,
                              "args": r.args, "decision": r.decision, "rule": r.rule, "reason": r.reason}))
        else:
            args = json.dumps(r.args, ensure_ascii=False)
            print(f"{r.ts}  {r.objective_id or '-'}  {r.decision:5}  {r.tool:10}  {r.rule}  {args[:100]}  {r.reason}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m swarmd.governor.cli``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m swarmd.governor.cli",
                                     description="swarmd governor: judge actions and read the audit log.")
    sub = parser.add_subparsers(dest="command", metavar="{policy,audit}")
    sub.required = True
    register(sub)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage already; keep its code
        return int(e.code or 0)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
