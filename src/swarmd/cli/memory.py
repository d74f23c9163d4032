"""``swarmctl feedback`` and ``swarmctl memory stats | consolidate | export``: the learning memory.

The memory lives in the daemon's store (``<data dir>/memory.db``; see
:mod:`swarmd.memory`).  ``feedback`` verifies (or corrects) finished
objectives' answers, all or nothing; ``memory stats`` shows how honest the
quality gate is on verified answers (false-accept rate with its 95% Wilson
upper bound, coverage, threshold in use) and which gates are still
unverified on this deployment, with the reviews missing
(:mod:`swarmd.memory.verification`); ``memory consolidate`` runs the
daemon's consolidation now (deduplicate, value, prune, refit the gate) and
returns when it is done; ``memory export`` writes the fine-tuning dataset.
"""

from __future__ import annotations

import argparse
import json

from swarmd.cli.common import DB_HELP, err, existing_db, out, table
from swarmd.config import load_config
from swarmd.costs.report import parse_since
from swarmd.errors import EXIT_OK, BadInput
from swarmd.memory.consolidate import consolidate
from swarmd.memory.export import FORMATS, export
from swarmd.memory.feedback import Feedback, apply_feedback, apply_file
from swarmd.memory.records import Memory
from swarmd.daemon.store import Store
from swarmd.daemon.views import gate_report

FEEDBACK_EPILOG = """\
examples:
  swarmctl feedback obj-1a2b --answer fix                # the right answer
  swarmctl feedback obj-1a2b --good                      # the answer given was right
  swarmctl feedback obj-1a2b --bad --note "not a docs change"
  swarmctl feedback --file reviews.jsonl                 # lines {"id", "answer"} or {"id", "verdict": "good"|"bad"}
exit codes: 0 applied, 2 bad input (unknown id, answer outside the labels, objective not final,
malformed line: every problem is listed with its line, and nothing is applied).
"""

MEMORY_EPILOG = """\
examples:
  swarmctl memory stats                 # per action, label set and model: verified, false-accept (95% upper), coverage
  swarmctl memory stats --json
  swarmctl memory consolidate           # dedup, value, prune, refit the gate now; returns when done
  swarmctl memory export --format chat-jsonl -o train.jsonl --min-value 0.5 --since 30d
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``feedback`` and ``memory`` (``stats``, ``consolidate``, ``export``) to swarmctl's subcommands."""
    fb = sub.add_parser("feedback", help="verify or correct finished objectives' answers (teaches the memory)",
                        description="Record a reviewer's verdict on finished objectives. An answer verified "
                                    "this way is kept in the learning memory: it measures the quality gate, "
                                    "refits it at the next consolidation and is served again by the answer cache.",
                        epilog=FEEDBACK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fb.add_argument("id", nargs="?", help="objective id (or --file)")
    what = fb.add_mutually_exclusive_group()
    what.add_argument("--answer", help="the right answer (one of the objective's labels, if it has labels)")
    what.add_argument("--good", action="store_true", help="the objective's answer was right")
    what.add_argument("--bad", action="store_true", help="the objective's answer was wrong")
    fb.add_argument("--note", help="free text kept with the record")
    fb.add_argument("--file", help="JSONL of {\"id\", \"answer\"} or {\"id\", \"verdict\"} lines (all or nothing)")
    fb.add_argument("--db", help=DB_HELP)
    fb.set_defaults(func=cmd_feedback)

    mem = sub.add_parser("memory", help="the learning memory: gate statistics, consolidation, export",
                         description="The learning memory in the daemon's store: how honest the quality gate is "
                                     "on verified answers (stats), the consolidation the daemon runs daily, run "
                                     "now (consolidate), and the fine-tuning dataset (export).",
                         epilog=MEMORY_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = mem.add_subparsers(dest="memory_command", metavar="SUBCOMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help=DB_HELP)
    p = msub.add_parser("stats", parents=[common], help="how honest the quality gate is on verified answers")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_stats)
    p = msub.add_parser("consolidate", parents=[common], help="dedup, value, prune and refit the gate now")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_consolidate)
    p = msub.add_parser("export", parents=[common], help="the fine-tuning dataset of verified answers")
    p.add_argument("--format", choices=FORMATS, default="chat-jsonl")
    p.add_argument("--min-value", type=float, help="only records valued at least this (0..1, set by consolidation)")
    p.add_argument("--since", help="only records verified since 30m/12h/7d/2w ago or YYYY-MM-DD[ HH:MM]")
    p.add_argument("-o", "--output", required=True, help="file to write ('-': standard output; the summary then "
                                                         "goes to stderr)")
    p.set_defaults(func=cmd_export)


def _memory(args: argparse.Namespace) -> Memory:
    return Memory(existing_db(args))


def cmd_feedback(args: argparse.Namespace) -> int:
    """``swarmctl feedback``: apply one item or a file, all or nothing; prints what was recorded."""
    memory = _memory(args)
    store = Store(memory.path)
    try:
        if args.file:
            if args.id or args.answer or args.good or args.bad:
                raise BadInput("give either --file or an id with --answer/--good/--bad, not both")
            records = apply_file(memory, store.get, args.file)
        else:
            if not args.id or not (args.answer or args.good or args.bad):
                raise BadInput("give an objective id and one of --answer LABEL, --good, --bad (or --file)")
            verdict = "good" if args.good else "bad" if args.bad else None
            records = apply_feedback(memory, store.get, [Feedback(args.id, args.answer, verdict, args.note,
                                                                  where=f"objective {args.id}")])
    finally:
        store.close()
        memory.close()
    wrong = sum(r.local_correct is False for r in records)
    out.print(f"{len(records)} feedback record(s) written; {wrong} say the judged answer was wrong")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    """``swarmctl memory stats``: a table (or ``--json``) of :func:`swarmd.memory.stats.gate_stats`."""
    total, rows, unverified = gate_report(existing_db(args), load_config(args.config))
    if args.json:
        print(json.dumps({"records": total, "gates": [r.to_json() for r in rows],
                          "unverified": [g.to_json() for g in unverified]}))
        return EXIT_OK
    t = table("action", "labels", "tier", "model", "prompt", "verified", "accepted", "false_accept", "95% upper",
              "coverage", "threshold", title=f"quality gate on verified answers ({total} records)")
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"
    for r in rows:
        t.add_row(r.action, r.labels, r.tier or "", r.model, r.prompt, str(r.verified), str(r.accepted), pct(r.false_accept),
                  pct(r.false_accept_upper), pct(r.coverage), "–" if r.threshold is None else
                  ("never" if r.threshold > 1 else f"{r.threshold:.3f}"))
    out.print(t)
    if unverified:
        u = table("action", "labels", "model", "prompt", "accepted unchecked", "verified", "reviews needed",
                  title="unverified gates: answers accepted under the shipped calibration, not yet checked on "
                        "this deployment (consolidation refits a gate from memory.min_verified reviews)")
        for g in unverified:
            u.add_row(g.action, g.labels, g.model, g.prompt, str(g.accepted), str(g.verified), str(g.reviews_needed))
        out.print(u)
    return EXIT_OK


def cmd_consolidate(args: argparse.Namespace) -> int:
    """``swarmctl memory consolidate``: run :func:`swarmd.memory.consolidate.consolidate` now."""
    memory = _memory(args)
    try:
        report = consolidate(memory, load_config(args.config))
    finally:
        memory.close()
    if args.json:
        print(json.dumps(report.to_json()))
        return EXIT_OK
    out.print(f"{report.records_before} records: {report.duplicates_removed} duplicates removed, "
              f"{report.pruned} pruned, {report.records_after} kept ({report.seconds:.1f} s)")
    t = table("action", "labels", "model", "train", "held out", "threshold", "utility new", "utility in use",
              "swapped", "note", title="gate refits")
    num = lambda v, f="{:.1f}": "–" if v is None else f.format(v)
    for g in report.groups:
        t.add_row(g.action, g.labels, g.model, str(g.trained_on), str(g.held_out),
                  "never" if g.threshold is not None and g.threshold > 1 else num(g.threshold, "{:.3f}"),
                  num(g.utility_new), num(g.utility_old), "yes" if g.swapped else "no", g.note)
    out.print(t)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``swarmctl memory export``: write the dataset and print its summary."""
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    memory = _memory(args)
    try:
        summary = export(memory, load_config(args.config), args.output, args.format, args.min_value, since)
    finally:
        memory.close()
    secrets = ", ".join(f"{k} {v}" for k, v in sorted(summary.secrets.items())) or "none"
    to_stdout = args.output == "-"              # the dataset is on stdout: the summary goes to stderr
    (err if to_stdout else out).print(
        f"{summary.written} lines written to {'stdout' if to_stdout else summary.path} ({summary.format}) from "
        f"{summary.read} records; left out: {summary.duplicates} duplicates, {summary.no_answer} without an "
        f"answer, {summary.below_value} below --min-value, {summary.unknown_action} of unknown actions; "
        f"secrets scrubbed: {secrets}")
    err.print("patterns scrubbed: private keys, sk-/sk-ant- keys, AWS key ids, GitHub and Slack tokens, JWTs, "
              "URL credentials, password/secret/token/api_key assignments")
    return EXIT_OK
