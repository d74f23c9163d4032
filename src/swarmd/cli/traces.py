"""``swarmctl traces list | show | disable | export``: the execution traces.

Traces live in the daemon's store (``<data dir>/memory.db``, table
``traces``; see :mod:`swarmd.agent.traces`).  ``list`` shows the active
version of each trace (``--all``: every version) with its confidence, runs,
success rate, what it cost to learn and what its replays saved; a trace whose
stored body no longer loads (corrupted or hand-edited) is listed as
``unusable`` and never followed.  ``show ID`` prints one version with its
steps and validations, or the problems that make it unusable (exit 2).
``disable ID`` stops every version of it from being followed (``--enable``
undoes it).  ``export`` writes every version as JSON lines (body and statistics).
"""

from __future__ import annotations

import argparse
import json
import sqlite3

from swarmd.cli.common import DB_HELP, err, existing_db, out, print_fields, table
from swarmd.errors import EXIT_OK, BadInput
from swarmd.agent.traces import TraceStore
from swarmd.daemon.views import trace_document, trace_list, trace_summaries

EPILOG = """\
examples:
  swarmctl traces list                 # active versions: confidence, runs, success rate, saved USD
  swarmctl traces list --all --json    # every version, one JSON object per line
  swarmctl traces show trace-1a2b3c4d5e6f --version 1
  swarmctl traces disable trace-1a2b3c4d5e6f
  swarmctl traces export > traces.jsonl
exit codes: 0 ok, 2 bad input (no store, unknown trace, unusable trace for show).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``traces`` (with ``list``, ``show``, ``disable``, ``export``) to swarmctl's subcommands."""
    traces = sub.add_parser("traces", help="execution traces learned from agent objectives",
                            description=__doc__.split("\n\n")[1], epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = traces.add_subparsers(dest="traces_command", metavar="SUBCOMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help=DB_HELP)
    common.add_argument("--json", action="store_true", help="one JSON object per line")
    p = tsub.add_parser("list", parents=[common], help="traces with confidence, runs, savings")
    p.add_argument("--all", action="store_true", help="every version, not only the active ones")
    p.set_defaults(func=cmd_list)
    p = tsub.add_parser("show", parents=[common], help="one trace: steps, validations, statistics")
    p.add_argument("id")
    p.add_argument("--version", type=int, help="a version (default: the active one)")
    p.set_defaults(func=cmd_show)
    p = tsub.add_parser("disable", parents=[common], help="never follow this trace (every version)")
    p.add_argument("id")
    p.add_argument("--enable", action="store_true", help="follow it again")
    p.set_defaults(func=cmd_disable)
    p = tsub.add_parser("export", parents=[common], help="every version as JSON lines")
    p.set_defaults(func=cmd_export)


def _store(args: argparse.Namespace) -> TraceStore:
    db = existing_db(args)
    try:
        return TraceStore(db)
    except sqlite3.Error as exc:
        raise BadInput(f"cannot open the trace store {db}: {exc}") from None


def cmd_list(args: argparse.Namespace) -> int:
    """``traces list``: a table (or JSON lines) of traces, newest first."""
    store = _store(args)
    try:
        listed = trace_list(store, args.all)
    finally:
        store.close()
    if args.json:
        for item in listed:
            print(json.dumps(item))
        return EXIT_OK
    shown = table("id", "v", "state", "confidence", "runs", "success", "cost $", "saved $", "goal")
    for t in listed:
        state = "unusable" if "unusable" in t else "disabled" if t["disabled"] else \
            "active" if t["active"] else "old"
        rate = f"{t['success_rate']:.0%}" if "success_rate" in t else "-"
        cost = f"{t['cost_usd']:.6f}" if "cost_usd" in t else "-"
        shown.add_row(t["id"], str(t["version"]), state, f"{t['confidence']:.3f}", str(t["runs"]), rate, cost,
                      f"{t['saved_usd']:.6f}", t["goal"][:60])
    out.print(shown)
    for t in listed:
        if "unusable" in t:
            err.print(f"{t['id']} v{t['version']} unusable: {t['unusable']}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``traces show ID``: one version's fields and steps (JSON with ``--json``).
    Raises :class:`~swarmd.agent.traces.TraceError` (exit 2) for an unknown or unusable trace."""
    store = _store(args)
    try:
        stored = store.get(args.id, args.version)
    finally:
        store.close()
    if args.json:
        print(json.dumps(trace_document(stored)))
        return EXIT_OK
    s, t = stored.summary(), stored.trace
    print_fields([("id", f"{s['id']} v{s['version']}"), ("goal", t.goal), ("template", t.template),
                  ("params", ", ".join(f"{p.name}={p.example}" for p in t.params) or "none"),
                  ("state", "disabled" if s["disabled"] else "active" if s["active"] else "old version"),
                  ("confidence", f"{s['confidence']:.4f}"),
                  ("runs", f"{s['runs']} ({s['successes']} ok, {s['failures']} failed)"),
                  ("learned by", f"{t.tier}/{t.model} for ${t.cost_usd:.6f}"),
                  ("saved", f"${s['saved_usd']:.6f}"), ("answer", t.answer),
                  ("preconditions", "; ".join(json.dumps(p.model_dump(by_alias=True)) for p in t.preconditions)
                   or "none")])
    steps = table("#", "tool", "args", "validations")
    for n, step in enumerate(t.steps, 1):
        steps.add_row(str(n), step.tool, json.dumps(step.args, ensure_ascii=False)[:120],
                      "; ".join(json.dumps(v.model_dump(by_alias=True, exclude_none=True), ensure_ascii=False)
                                for v in step.expect))
    out.print(steps)
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    """``traces disable ID`` (``--enable``: undo)."""
    store = _store(args)
    try:
        n = store.set_disabled(args.id, not args.enable)
    finally:
        store.close()
    verb = "enabled" if args.enable else "disabled"
    if args.json:
        print(json.dumps({"id": args.id, "state": verb, "versions": n}))
    else:
        out.print(f"{verb} {args.id} ({n} version{'s' if n != 1 else ''})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``traces export``: every version, oldest first, one JSON object per line:
    the summary, and ``trace`` (the body) or ``unusable`` with the raw ``body``."""
    store = _store(args)
    try:
        rows = list(reversed(store.rows(all_versions=True)))
        for row, summary in zip(rows, trace_summaries(store, rows)):
            body = {"body": row["body"]} if "unusable" in summary else {"trace": json.loads(row["body"])}
            print(json.dumps({**summary, **body}))
    finally:
        store.close()
    return EXIT_OK
