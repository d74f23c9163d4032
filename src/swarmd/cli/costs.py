"""``swarmctl report | cost-analysis``: what swarmd spent, and what a workload would cost.

``report`` reads the cost ledger (:mod:`swarmd.costs.report`);
``cost-analysis`` (also ``python cost_analysis.py``) runs
:func:`swarmd.costs.analysis.analyse` and prints its result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from rich.console import Console

from swarmd.cli.common import err, out, table
from swarmd.config import load_config
from swarmd.costs.analysis import analyse
from swarmd.costs.ledger_data import read_rows, write_jsonl
from swarmd.costs.profile import BUILTIN
from swarmd.errors import EXIT_OK, BadInput
from swarmd.paths import data_dir, db_path
from swarmd.costs.report import build_report, parse_since, render_markdown, summary_line, write_report

ANALYSIS_DESCRIPTION = """\
Predict what a workload costs with swarmd (hybrid: local tiers first, the API
tier only for what they cannot answer) versus sending every request to the API
tier, at the prices in llm_config.yaml (USD per million tokens).

--simulate: a workload profile (objectives per day, action mix, tokens per
call, escalation rate per tier) over --days days.  Built-in profiles: light,
medium, heavy (each states where its numbers come from: measured by
bench/classify.py-style runs of the real embedded model, or assumptions), or
your own YAML file (format: swarmd/costs/profiles/medium.yaml).

--from-ledger: measures the profile from what actually ran (memory.db, or a
JSONL export of ledger rows: swarmctl report --export-jsonl FILE), analyses the
real spend the same way, and checks that simulating the measured profile at
the ledger's volume reproduces the ledger's hybrid cost within 5%.

Deterministic: expected values, no random sampling.
The same command is `python cost_analysis.py ...` in a checkout."""

ANALYSIS_EPILOG = """\
examples:
  swarmctl cost-analysis --simulate --days 30
  swarmctl cost-analysis --simulate --days 30 --profile heavy --json
  swarmctl cost-analysis --simulate --profile my_workload.yaml --iterations-per-day 2000 --plot costs.png
  swarmctl cost-analysis --from-ledger ~/.local/share/swarmd/memory.db --since 7d
  swarmctl cost-analysis --from-ledger memory.db --days 30 --iterations-per-day 5000 --save-profile measured.yaml

--json keys: days, objectives, objectives_per_day, answered, calls,
pure_api_cost_usd (the answered objectives on the API tier only),
hybrid_cost_usd, savings_usd, savings_pct (on the answered objectives),
unresolved, unresolved_api_cost_usd (not saved), per_day, daily_cap_usd,
exceeds_daily_cap, by_tier, by_action, top_actions, profile, method, api_model;
with --from-ledger also ledger (actual figures), validity and measured_profile.
exit codes: 0 ok (also when the validity check fails: it is reported), 2 bad input."""

REPORT_EPILOG = """\
examples:
  swarmctl report
  swarmctl report --since 7d
  swarmctl report --since 2026-11-01 --until 2026-11-08 --json
  swarmctl report --since 30d --export-jsonl ledger.jsonl   # for swarmctl cost-analysis --from-ledger
exit codes: 0 ok, 2 bad input (window, unreadable ledger)."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report`` and ``cost-analysis`` to swarmctl's subcommands."""
    report = sub.add_parser(
        "report", help="cost report: spend by tier/model/action, savings vs API-only, escalation, unresolved",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=REPORT_EPILOG,
        description="What swarmd spent in a window (from the ledger in the data directory's memory.db): calls, "
                    "tokens and USD by tier, model and action; escalation rate per action; what the same requests "
                    "would have cost on the API tier alone and the savings; unresolved counts (budget among "
                    "them). Prints Markdown and writes it with a PNG chart to <data dir>/reports/.")
    report.add_argument("--since", default="1d", help="start: 30m, 12h, 7d, 2w ago, or YYYY-MM-DD[ HH:MM] (default 1d)")
    report.add_argument("--until", help="end, same forms (default: now)")
    report.add_argument("--db", help="store or ledger file (default: <data dir>/memory.db)")
    report.add_argument("--out-dir", help="where to write the files (default: <data dir>/<reports.dir>)")
    report.add_argument("--no-write", action="store_true", help="print only; write no files")
    report.add_argument("--export-jsonl", metavar="FILE", help="also write the window's ledger rows as JSONL")
    report.add_argument("--json", action="store_true", help="print the report as one JSON object")
    report.set_defaults(func=cmd_report)

    analysis = sub.add_parser(
        "cost-analysis", help="predict a workload's cost (simulate a profile, or measure one from a ledger)",
        description=ANALYSIS_DESCRIPTION, epilog=ANALYSIS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = analysis.add_mutually_exclusive_group(required=True)
    mode.add_argument("--simulate", action="store_true", help="simulate a workload profile (see --profile)")
    mode.add_argument("--from-ledger", metavar="PATH",
                      help="measure the profile from a ledger: memory.db (SQLite) or a JSONL export of ledger rows")
    analysis.add_argument("--profile", default=None,
                          help=f"with --simulate: {'|'.join(BUILTIN)} or a profile YAML file (default: medium)")
    analysis.add_argument("--days", type=float, default=None,
                          help="days to cost (default: 30 with --simulate; the ledger's span with --from-ledger)")
    analysis.add_argument("--iterations-per-day", type=float, default=None, metavar="N",
                          help="objectives (router requests) per day: scales the profile's volume, keeping its "
                               "mix, tokens and escalation rates (default: the profile's own, or the ledger's)")
    analysis.add_argument("--since", default=None,
                          help="with --from-ledger: only rows since 30m/12h/7d/2w ago or YYYY-MM-DD[ HH:MM]")
    analysis.add_argument("--top", type=int, default=5, help="actions listed under 'top actions by cost' (default 5)")
    analysis.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    analysis.add_argument("--plot", metavar="PNG", help="also write a chart (cost by action, calls by tier) to PNG")
    analysis.add_argument("--save-profile", metavar="YAML",
                          help="write the profile used (e.g. the one measured by --from-ledger) as YAML, "
                               "reusable with --profile")
    analysis.set_defaults(func=cmd_cost_analysis)


# --------------------------------------------------------------------------- cost-analysis


def cmd_cost_analysis(args: argparse.Namespace) -> int:
    """``swarmctl cost-analysis``: run one analysis, print it (``--json``: one
    JSON object), write ``--save-profile`` / ``--plot``."""
    config = load_config(args.config)
    try:
        result, profile = analyse(config, profile=args.profile, from_ledger_path=args.from_ledger, days=args.days,
                                  iterations_per_day=args.iterations_per_day, since=args.since, top=args.top)
        if args.save_profile:
            Path(args.save_profile).write_text(yaml.safe_dump(profile.to_dict(), sort_keys=False), encoding="utf-8")
            result["saved_profile"] = args.save_profile
        if args.plot:
            from swarmd.costs.charts import plot_analysis  # heavy: matplotlib (~0.5 s), only for --plot
            plot_analysis(result, args.plot)
            result["plot"] = args.plot
    except (ValueError, OSError) as exc:
        raise BadInput(str(exc)) from None
    if args.json:
        print(json.dumps(result))
    else:
        print_analysis(result, out)
    return EXIT_OK


def print_analysis(result: dict, console: Console) -> None:
    """The human-readable form of :func:`~swarmd.costs.analysis.analyse`'s result."""
    api = result["api_model"]
    ledger = result.get("ledger")
    if ledger:
        console.print(f"[bold]Ledger[/] {ledger['path']}: {ledger['rows']} calls, {ledger['objectives']} requests "
                      f"over {ledger['span_days']:.2f} day(s)")
        console.print(f"  actual spend ${ledger['cost_usd']:.6f} (at today's config prices "
                      f"${ledger['cost_repriced_usd']:.6f}); {ledger['answered']} answered: API-only "
                      f"${ledger['pure_api_cost_usd']:.6f}, saved ${ledger['savings_usd']:.6f} "
                      f"({ledger['savings_pct']:.1f}%); escalation {100 * ledger['escalation_rate']:.1f}%")
        console.print(f"  unresolved {ledger['unresolved']} requests: nothing saved; API-only answers would cost "
                      f"${ledger['unresolved_api_cost_usd']:.6f}")
        v = result["validity"]
        verdict = "[green]ok[/]" if v["ok"] else "[red]FAILED[/]"
        console.print(f"  validity: measured profile simulated at the ledger's volume costs "
                      f"${v['simulated_hybrid_cost_usd']:.6f} vs actual ${v['actual_hybrid_cost_usd']:.6f} "
                      f"({100 * v['rel_error']:.2f}% off, limit {100 * v['tolerance']:.0f}%): {verdict}")
        console.print()
    console.print(f"[bold]{result['profile']}[/]: {result['days']:g} days x {result['objectives_per_day']:,.1f} "
                  f"objectives/day = {result['objectives']:,.0f} objectives, {result['calls']:,.0f} model calls "
                  f"({result['method']})")
    console.print(f"  pure API   ${result['pure_api_cost_usd']:,.4f}   (every answered objective, "
                  f"{result['answered']:,.1f} expected, one call to {api['model']} "
                  f"at ${api['price_per_mtok_in']:g}/${api['price_per_mtok_out']:g} per million tokens in/out)")
    console.print(f"  hybrid     ${result['hybrid_cost_usd']:,.4f}   (${result['per_day']['hybrid_cost_usd']:,.4f} per day; "
                  f"every call, the unresolved objectives' too)")
    console.print(f"  savings    ${result['savings_usd']:,.4f}   ({result['savings_pct']:.1f}%, on the answered objectives)")
    console.print(f"  unresolved {result['unresolved']:,.1f} objectives (expected): nothing saved; API-only answers "
                  f"would cost ${result['unresolved_api_cost_usd']:,.4f}")
    if result["exceeds_daily_cap"]:
        console.print(f"  [yellow]hybrid spend per day exceeds budgets.daily_usd (${result['daily_cap_usd']:g}): "
                      f"the cap would stop API calls and those objectives would end unresolved: budget[/]")
    tiers = table("tier", "calls", "share of calls", "ended here (incl. unresolved)", "tokens in", "tokens out",
                  "cost (USD)", title="tier distribution")
    for tier, t in result["by_tier"].items():
        tiers.add_row(tier, f"{t['calls']:,.1f}", f"{100 * t['share_of_calls']:.1f}%",
                      f"{100 * t['share_answered']:.1f}%", f"{t['tokens_in']:,.0f}", f"{t['tokens_out']:,.0f}",
                      f"{t['cost_usd']:,.4f}")
    console.print(tiers)
    actions = table("action", "objectives", "unresolved", "calls", "paid calls", "hybrid (USD)",
                    "pure API, answered (USD)", "savings", "pure API, unresolved (USD)", title="per action")
    for name, a in result["by_action"].items():
        actions.add_row(name, f"{a['objectives']:,.1f}", f"{a['unresolved']:,.1f}", f"{a['calls']:,.1f}",
                        f"{a['paid_calls']:,.1f}", f"{a['hybrid_cost_usd']:,.4f}", f"{a['pure_api_cost_usd']:,.4f}",
                        f"{a['savings_pct']:.1f}%", f"{a['unresolved_api_cost_usd']:,.4f}")
    console.print(actions)
    console.print("top actions by cost: " + ", ".join(f"{a} ${c:,.4f}" for a, c in result["top_actions"]))
    if result.get("sources"):
        console.print(f"[dim]sources: {result['sources'].strip()}[/]")
    for key in ("saved_profile", "plot"):
        if result.get(key):
            console.print(f"wrote {result[key]}")


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    """``swarmctl report``: the cost report of a window, printed and written
    as Markdown + PNG (unless ``--no-write``)."""
    config = load_config(args.config)
    data = data_dir(args.data_dir, create=False)    # reports/ is created under it only once the ledger was read
    db = Path(args.db) if args.db else db_path(data, config.storage.db)
    now = time.time()
    try:
        since = parse_since(args.since, now)
        until = parse_since(args.until, now) if args.until else now
        if until <= since:
            raise ValueError(f"--until ({args.until}) must be after --since ({args.since})")
        report = build_report(db, config, since, until)
        if args.export_jsonl:
            write_jsonl(read_rows(db, since, until), args.export_jsonl)
    except (ValueError, OSError) as exc:
        raise BadInput(str(exc)) from None
    paths = None
    if not args.no_write:
        out_dir = Path(args.out_dir) if args.out_dir else db_path(data, config.reports.dir)
        label = args.since.strip().replace(" ", "_").replace(":", "")
        paths = write_report(report, out_dir, label)
    if args.json:
        report["files"] = [str(p) for p in paths] if paths else []
        print(json.dumps(report))
    else:
        print(render_markdown(report, paths[1].name if paths else None))
        err.print(summary_line(report, paths[0] if paths else None))
    return EXIT_OK
