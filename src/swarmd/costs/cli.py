"""Command lines: ``cost_analysis.py`` (also ``swarmctl cost-analysis``) and ``swarmctl report``.

Exit codes: 0 ok, 2 bad input (unknown profile, unreadable ledger, bad
flag combination, bad config).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from swarmd.config import Config, ConfigError, load_config
from swarmd.costs.ledger_data import LedgerReadError, read_rows, summarize
from swarmd.costs.profile import BUILTIN, ProfileError, from_ledger, ledger_span_days, load_profile
from swarmd.costs.simulate import METHOD, simulate

#: The validity check: simulating the measured profile at the ledger's volume
#: must reproduce the ledger's hybrid cost within this relative error.
VALIDITY_TOLERANCE = 0.05

DESCRIPTION = """\
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

Deterministic: expected values, no random sampling."""

EPILOG = """\
examples:
  python cost_analysis.py --simulate --days 30
  python cost_analysis.py --simulate --days 30 --profile heavy --json
  python cost_analysis.py --simulate --profile my_workload.yaml --iterations-per-day 2000 --plot costs.png
  python cost_analysis.py --from-ledger ~/.local/share/swarmd/memory.db --since 7d
  python cost_analysis.py --from-ledger memory.db --days 30 --iterations-per-day 5000 --save-profile measured.yaml

--json keys: days, objectives, objectives_per_day, calls, pure_api_cost_usd,
hybrid_cost_usd, savings_usd, savings_pct, unresolved, per_day, daily_cap_usd,
exceeds_daily_cap, by_tier, by_action, top_actions, profile, method, api_model;
with --from-ledger also ledger (actual figures), validity and measured_profile.
exit codes: 0 ok (also when the validity check fails: it is reported), 2 bad input."""


def add_cost_analysis_args(parser: argparse.ArgumentParser, own_config: bool = True) -> None:
    """Add the cost-analysis flags to ``parser`` (``own_config``: also
    ``--config``; swarmctl has its own global ``--config``)."""
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--simulate", action="store_true", help="simulate a workload profile (see --profile)")
    mode.add_argument("--from-ledger", metavar="PATH",
                      help="measure the profile from a ledger: memory.db (SQLite) or a JSONL export of ledger rows")
    parser.add_argument("--profile", default=None,
                        help=f"with --simulate: {'|'.join(BUILTIN)} or a profile YAML file (default: medium)")
    parser.add_argument("--days", type=float, default=None,
                        help="days to cost (default: 30 with --simulate; the ledger's span with --from-ledger)")
    parser.add_argument("--iterations-per-day", type=float, default=None, metavar="N",
                        help="objectives (router requests) per day: scales the profile's volume, keeping its "
                             "mix, tokens and escalation rates (default: the profile's own, or the ledger's)")
    parser.add_argument("--since", default=None,
                        help="with --from-ledger: only rows since 30m/12h/7d/2w ago or YYYY-MM-DD[ HH:MM]")
    parser.add_argument("--top", type=int, default=5, help="actions listed under 'top actions by cost' (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--plot", metavar="PNG", help="also write a chart (cost by action, calls by tier) to PNG")
    parser.add_argument("--save-profile", metavar="YAML",
                        help="write the profile used (e.g. the one measured by --from-ledger) as YAML, "
                             "reusable with --profile")
    if own_config:
        parser.add_argument("--config", help="llm_config.yaml with the prices (default: $SWARMD_CONFIG, "
                                             "./llm_config.yaml)")


def analyse(args: argparse.Namespace, config: Config) -> dict:
    """Run the analysis ``args`` describe; returns the JSON document.
    Raises ``ValueError`` (incl. :class:`ProfileError`, :class:`LedgerReadError`)
    for bad input."""
    if args.days is not None and args.days <= 0:
        raise ValueError(f"--days must be > 0, found {args.days:g}")
    if args.iterations_per_day is not None and args.iterations_per_day <= 0:
        raise ValueError(f"--iterations-per-day must be > 0, found {args.iterations_per_day:g}")
    if args.top < 1:
        raise ValueError(f"--top must be >= 1, found {args.top}")
    if args.simulate:
        if args.since is not None:
            raise ValueError("--since applies to --from-ledger only")
        profile = load_profile(args.profile or "medium")
        if args.iterations_per_day is not None:
            profile = profile.scaled(args.iterations_per_day)
        result = simulate(profile, config, args.days if args.days is not None else 30.0)
        result["sources"] = profile.sources
    else:
        if args.profile is not None:
            raise ValueError("--profile applies to --simulate only (--from-ledger measures the profile)")
        from swarmd.costs.report import parse_since
        since = parse_since(args.since) if args.since else None
        rows = read_rows(args.from_ledger, since)
        if not rows:
            raise LedgerReadError(f"{args.from_ledger}: no ledger rows" + (f" since {args.since}" if since else ""))
        measured = from_ledger(rows, config, name=f"measured from {Path(args.from_ledger).name}")
        actual = summarize(rows, config)
        span = ledger_span_days(rows)
        at_volume = simulate(measured, config, span)
        repriced = sum(_reprice(r, config) for r in rows)
        error = abs(at_volume["hybrid_cost_usd"] - repriced) / repriced if repriced else \
            (0.0 if at_volume["hybrid_cost_usd"] == 0 else float("inf"))
        profile = measured if args.iterations_per_day is None else measured.scaled(args.iterations_per_day)
        projected = args.days is not None or args.iterations_per_day is not None
        result = simulate(profile, config, args.days if args.days is not None else span) if projected else at_volume
        result["ledger"] = {
            "path": str(args.from_ledger), "rows": len(rows), "span_days": span,
            "objectives": measured.extra["objectives"], "cost_usd": actual["cost_usd"],
            "cost_repriced_usd": repriced, "pure_api_cost_usd": actual["pure_api_cost_usd"],
            "savings_usd": actual["savings_usd"], "savings_pct": actual["savings_pct"],
            "escalation_rate": actual["escalation_rate"], "unresolved": actual["unresolved"],
            "by_tier": actual["by_tier"], "by_action": actual["by_action"],
        }
        result["validity"] = {
            "actual_hybrid_cost_usd": repriced, "simulated_hybrid_cost_usd": at_volume["hybrid_cost_usd"],
            "recorded_hybrid_cost_usd": actual["cost_usd"],
            "rel_error": error, "tolerance": VALIDITY_TOLERANCE, "ok": error <= VALIDITY_TOLERANCE,
            "what": "the measured profile simulated at the ledger's volume vs the ledger's calls priced at the "
                    "config's prices (recorded_hybrid_cost_usd: as priced when the calls were made; the two "
                    "differ only if prices changed since)",
        }
        result["measured_profile"] = measured.to_dict()
        result["sources"] = measured.sources
    result["top_actions"] = sorted(([a, r["hybrid_cost_usd"]] for a, r in result["by_action"].items()),
                                   key=lambda x: -x[1])[:args.top]
    result["config"] = config.source
    if args.save_profile:
        import yaml
        Path(args.save_profile).write_text(yaml.safe_dump(profile.to_dict(), sort_keys=False), encoding="utf-8")
        result["saved_profile"] = args.save_profile
    if args.plot:
        from swarmd.costs.charts import plot_analysis
        plot_analysis(result, args.plot)
        result["plot"] = args.plot
    return result


def _reprice(row: dict, config: Config) -> float:
    """A ledger row's tokens at the current price of its tier's first model
    (the row's own cost when its tier is gone from the config)."""
    from swarmd.costs.pricing import price_usd, tier_model
    try:
        return price_usd(tier_model(config, row["tier"]), int(row["tokens_in"] or 0), int(row["tokens_out"] or 0))
    except KeyError:
        return float(row["cost_usd"] or 0.0)


def print_analysis(result: dict, console: Console) -> None:
    """The human-readable form of :func:`analyse`'s result."""
    api = result["api_model"]
    ledger = result.get("ledger")
    if ledger:
        console.print(f"[bold]Ledger[/] {ledger['path']}: {ledger['rows']} calls, {ledger['objectives']} requests "
                      f"over {ledger['span_days']:.2f} day(s)")
        console.print(f"  actual spend ${ledger['cost_usd']:.6f} (at today's config prices "
                      f"${ledger['cost_repriced_usd']:.6f}); API-only ${ledger['pure_api_cost_usd']:.6f}; saved "
                      f"{ledger['savings_pct']:.1f}%; escalation {100 * ledger['escalation_rate']:.1f}%; "
                      f"unresolved {ledger['unresolved']}")
        v = result["validity"]
        verdict = "[green]ok[/]" if v["ok"] else "[red]FAILED[/]"
        console.print(f"  validity: measured profile simulated at the ledger's volume costs "
                      f"${v['simulated_hybrid_cost_usd']:.6f} vs actual ${v['actual_hybrid_cost_usd']:.6f} "
                      f"({100 * v['rel_error']:.2f}% off, limit {100 * v['tolerance']:.0f}%): {verdict}")
        console.print()
    console.print(f"[bold]{result['profile']}[/]: {result['days']:g} days x {result['objectives_per_day']:,.1f} "
                  f"objectives/day = {result['objectives']:,.0f} objectives, {result['calls']:,.0f} model calls "
                  f"({result['method']})")
    console.print(f"  pure API   ${result['pure_api_cost_usd']:,.4f}   (every objective one call to {api['model']} "
                  f"at ${api['price_per_mtok_in']:g}/${api['price_per_mtok_out']:g} per million tokens in/out)")
    console.print(f"  hybrid     ${result['hybrid_cost_usd']:,.4f}   (${result['per_day']['hybrid_cost_usd']:,.4f} per day)")
    console.print(f"  savings    ${result['savings_usd']:,.4f}   ({result['savings_pct']:.1f}%)")
    console.print(f"  unresolved {result['unresolved']:,.1f} objectives (expected)")
    if result["exceeds_daily_cap"]:
        console.print(f"  [yellow]hybrid spend per day exceeds budgets.daily_usd (${result['daily_cap_usd']:g}): "
                      f"the cap would stop API calls and those objectives would end unresolved: budget[/]")
    tiers = Table("tier", "calls", "share of calls", "ended here (incl. unresolved)", "tokens in", "tokens out", "cost (USD)",
                  title="tier distribution")
    for tier, t in result["by_tier"].items():
        tiers.add_row(tier, f"{t['calls']:,.1f}", f"{100 * t['share_of_calls']:.1f}%",
                      f"{100 * t['share_answered']:.1f}%", f"{t['tokens_in']:,.0f}", f"{t['tokens_out']:,.0f}",
                      f"{t['cost_usd']:,.4f}")
    console.print(tiers)
    actions = Table("action", "objectives", "calls", "paid calls", "hybrid (USD)", "pure API (USD)", "savings",
                    title="per action")
    for name, a in result["by_action"].items():
        actions.add_row(name, f"{a['objectives']:,.1f}", f"{a['calls']:,.1f}", f"{a['paid_calls']:,.1f}",
                        f"{a['hybrid_cost_usd']:,.4f}", f"{a['pure_api_cost_usd']:,.4f}", f"{a['savings_pct']:.1f}%")
    console.print(actions)
    console.print("top actions by cost: " + ", ".join(f"{a} ${c:,.4f}" for a, c in result["top_actions"]))
    if result.get("sources"):
        console.print(f"[dim]sources: {result['sources'].strip()}[/]")
    for key in ("saved_profile", "plot"):
        if result.get(key):
            console.print(f"wrote {result[key]}")


def run_cost_analysis(args: argparse.Namespace) -> int:
    """Run and print one analysis (``--json``: one JSON object).  Raises
    ``ValueError``/:class:`~swarmd.config.ConfigError` for bad input."""
    config = load_config(args.config)
    result = analyse(args, config)
    if args.json:
        print(json.dumps(result))
    else:
        print_analysis(result, Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cost_analysis.py``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="cost_analysis.py", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cost_analysis_args(parser)
    args = parser.parse_args(argv)
    try:
        return run_cost_analysis(args)
    except (ValueError, ConfigError, OSError) as exc:
        print(f"cost_analysis.py: error: {exc}", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------- swarmctl


def cmd_cost_analysis(args: argparse.Namespace) -> int:
    """``swarmctl cost-analysis``: :func:`run_cost_analysis` with swarmctl's error handling."""
    from swarmd.cli import BadInput
    try:
        return run_cost_analysis(args)
    except (ValueError, OSError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise BadInput(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    """``swarmctl report``: the cost report of a window, printed and written
    as Markdown + PNG (unless ``--no-write``)."""
    from swarmd.cli import BadInput
    from swarmd.paths import data_dir, db_path
    from swarmd.costs.report import build_report, parse_since, render_markdown, summary_line, write_report

    config = load_config(args.config)
    data = data_dir(args.data_dir)
    db = Path(args.db) if args.db else db_path(data, config.storage.db)
    now = time.time()
    try:
        since = parse_since(args.since, now)
        until = parse_since(args.until, now) if args.until else now
        if until <= since:
            raise ValueError(f"--until ({args.until}) must be after --since ({args.since})")
        report = build_report(db, config, since, until)
        if args.export_jsonl:
            from swarmd.costs.ledger_data import write_jsonl
            write_jsonl(read_rows(db, since, until), args.export_jsonl)
    except (ValueError, OSError) as exc:
        raise BadInput(str(exc)) from None
    paths = None
    if not args.no_write:
        out_dir = Path(args.out_dir) if args.out_dir else None
        if out_dir is None:
            out_dir = Path(config.reports.dir).expanduser()
            out_dir = out_dir if out_dir.is_absolute() else data / out_dir
        label = args.since.strip().replace(" ", "_").replace(":", "")
        paths = write_report(report, out_dir, label)
    if args.json:
        report["files"] = [str(p) for p in paths] if paths else []
        print(json.dumps(report))
    else:
        print(render_markdown(report, paths[1].name if paths else None))
        Console(stderr=True, highlight=False, soft_wrap=True).print(summary_line(report, paths[0] if paths else None))
    return 0


def register(subparsers) -> None:
    """Add ``report`` and ``cost-analysis`` to swarmctl's subcommands."""
    report = subparsers.add_parser(
        "report", help="cost report: spend by tier/model/action, savings vs API-only, escalation, unresolved",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What swarmd spent in a window (from the ledger in the data directory's memory.db): calls, "
                    "tokens and USD by tier, model and action; escalation rate per action; what the same requests "
                    "would have cost on the API tier alone and the savings; unresolved counts (budget among "
                    "them). Prints Markdown and writes it with a PNG chart to <data dir>/reports/.",
        epilog="examples:\n  swarmctl report\n  swarmctl report --since 7d\n"
               "  swarmctl report --since 2026-11-01 --until 2026-11-08 --json\n"
               "  swarmctl report --since 30d --export-jsonl ledger.jsonl   # for cost_analysis.py --from-ledger")
    report.add_argument("--since", default="1d", help="start: 30m, 12h, 7d, 2w ago, or YYYY-MM-DD[ HH:MM] (default 1d)")
    report.add_argument("--until", help="end, same forms (default: now)")
    report.add_argument("--db", help="store or ledger file (default: <data dir>/memory.db)")
    report.add_argument("--out-dir", help="where to write the files (default: <data dir>/<reports.dir>)")
    report.add_argument("--no-write", action="store_true", help="print only; write no files")
    report.add_argument("--export-jsonl", metavar="FILE", help="also write the window's ledger rows as JSONL")
    report.add_argument("--json", action="store_true", help="print the report as one JSON object")
    report.set_defaults(func=cmd_report)

    analysis = subparsers.add_parser(
        "cost-analysis", help="predict a workload's cost (simulate a profile, or measure one from a ledger)",
        description=DESCRIPTION, epilog=EPILOG.replace("python cost_analysis.py", "swarmctl cost-analysis"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cost_analysis_args(analysis, own_config=False)
    analysis.set_defaults(func=cmd_cost_analysis)
