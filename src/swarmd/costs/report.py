"""Cost reports: what swarmd spent in a time window, and what the API tier alone would have cost.

A report covers ledger rows with ``since_ts <= ts < until_ts`` (unix seconds): calls,
tokens, spend (USD) and escalation rate by tier, model and action; the pure-API cost of
the answered requests and the savings on them; the unresolved requests apart (count and
their API-only cost: not saved); objectives finished in the window by state, unresolved
ones by reason and by routing strategy; agent runs by mode (``learner``, ``follower``,
``supervised``) and the savings per trace (:func:`trace_savings`).  Definitions:
:mod:`swarmd.costs.ledger_data`.

Written as ``<out_dir>/costs-<YYYY-MM-DD_HHMM>-<label>.md`` plus a PNG chart next to it
(:mod:`swarmd.costs.charts`), and summarised in one log line (:func:`summary_line`).  :func:`spend_over_time` buckets a
window's spend by tier for the dashboard's chart (:func:`swarmd.costs.charts.spend_svg`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from swarmd.config import Config
from swarmd.costs.ledger import FOLLOWER, SUPERVISED, TRACE_TIER
from swarmd.costs.ledger_data import read_objectives, read_rows, summarize
from swarmd.store.db import connect


def build_report(db_path: str | Path, config: Config, since_ts: float, until_ts: float | None = None) -> dict:
    """The report dict: :func:`swarmd.costs.ledger_data.summarize` of the
    window's rows plus ``since_ts``, ``until_ts`` (unix s), ``objectives``
    (:func:`~swarmd.costs.ledger_data.read_objectives`, ``None`` without a
    store) and ``db`` (the path).  Raises
    :class:`~swarmd.costs.ledger_data.LedgerReadError`."""
    until_ts = time.time() if until_ts is None else until_ts
    rows = read_rows(db_path, since_ts, until_ts)
    report = summarize(rows, config)
    report.update(since_ts=since_ts, until_ts=until_ts, db=str(db_path),
                  objectives=read_objectives(db_path, since_ts, until_ts), traces=trace_savings(db_path, rows))
    return report


#: Time buckets of :func:`spend_over_time` (the dashboard's chart: one bar per bucket).
SPEND_BUCKETS = 24


def spend_over_time(rows: list[dict], since_ts: float, until_ts: float, buckets: int = SPEND_BUCKETS) -> dict:
    """Spend (USD) by tier in ``buckets`` equal time buckets of ``[since_ts, until_ts)``
    (unix s): ``{"since_ts", "until_ts", "bucket_s": seconds per bucket, "starts": [bucket
    start ts], "tiers": {tier: [USD per bucket]}, "calls": {tier: [calls per bucket]}}``,
    tiers in their first appearance's order.  ``rows``: ledger rows (``ts``, ``tier``,
    ``cost_usd``; :func:`~swarmd.costs.ledger_data.read_rows`); rows outside the
    window are left out.  Raises ``ValueError`` when ``until_ts <= since_ts`` or ``buckets < 1``."""
    if until_ts <= since_ts or buckets < 1:
        raise ValueError(f"spend_over_time: empty window ({since_ts} .. {until_ts}) or buckets={buckets}")
    width = (until_ts - since_ts) / buckets
    tiers: dict[str, list[float]] = {}
    calls: dict[str, list[int]] = {}
    for row in rows:
        if not since_ts <= row["ts"] < until_ts:
            continue
        i = min(buckets - 1, int((row["ts"] - since_ts) // width))
        tiers.setdefault(row["tier"], [0.0] * buckets)[i] += row["cost_usd"]
        calls.setdefault(row["tier"], [0] * buckets)[i] += 1
    return {"since_ts": since_ts, "until_ts": until_ts, "bucket_s": width,
            "starts": [since_ts + i * width for i in range(buckets)], "tiers": tiers, "calls": calls}


def trace_savings(db_path: str | Path, rows: list[dict]) -> list[dict]:
    """Savings per execution trace over ``rows`` (ledger rows of one window):
    for each ``<id>@v<version>`` replayed (rows of tier ``TRACE``, mode
    ``follower`` or ``supervised``), ``{"trace", "goal", "followed",
    "supervised", "failed", "learner_cost_usd", "replay_calls_usd",
    "saved_usd"}``: successful unsupervised and supervised (verified)
    replays, failed ones (a validation, a denial, a rejected verification);
    ``replay_calls_usd``: what the model calls of those replays cost (rows of
    the same objectives in mode ``follower``/``supervised`` other than the
    ``TRACE`` row: slot fills, verifications, failed replays' included);
    ``saved_usd`` = successful replays × the cost of the learner run that
    made the trace (what the same goal cost with a model; from the ``traces``
    table) − ``replay_calls_usd``.  Most saved first; ``[]`` without replays
    or without a ``traces`` table (a JSONL export); a trace whose row cannot
    be read counts with cost 0."""
    replays = (FOLLOWER, SUPERVISED)
    counts: dict[str, list[int]] = {}
    trace_of: dict[str | None, str] = {}
    for row in rows:
        if row.get("mode") in replays and row.get("tier") == TRACE_TIER:
            key = row.get("model") or "?"
            trace_of[row.get("objective_id")] = key
            ok_supervised_failed = counts.setdefault(key, [0, 0, 0])
            ok_supervised_failed[2 if row["outcome"] != "accepted" else int(row["mode"] == SUPERVISED)] += 1
    if not counts:
        return []
    calls = dict.fromkeys(counts, 0.0)
    for row in rows:
        key = trace_of.get(row.get("objective_id"))
        if key is not None and row.get("mode") in replays and row.get("tier") != TRACE_TIER:
            calls[key] += float(row.get("cost_usd") or 0.0)
    known: dict[str, tuple[str, float]] = {}
    try:
        conn = connect(db_path, readonly=True)
        try:
            for r in conn.execute("SELECT id, version, goal, body FROM traces"):
                try:
                    cost = float(json.loads(r["body"]).get("cost_usd") or 0.0)
                except (ValueError, AttributeError, TypeError):
                    cost = 0.0
                known[f"{r['id']}@v{r['version']}"] = (r["goal"], cost)
        finally:
            conn.close()
    except sqlite3.Error:
        pass
    out = []
    for key, (ok, supervised, failed) in counts.items():
        goal, cost = known.get(key, ("?", 0.0))
        out.append({"trace": key, "goal": goal, "followed": ok, "supervised": supervised, "failed": failed,
                    "learner_cost_usd": cost, "replay_calls_usd": calls[key],
                    "saved_usd": (ok + supervised) * cost - calls[key]})
    return sorted(out, key=lambda t: -t["saved_usd"])


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _usd(x: float) -> str:
    return f"${x:,.4f}" if abs(x) < 100 else f"${x:,.2f}"


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def render_markdown(report: dict, chart_name: str | None = None) -> str:
    """The report as Markdown (``chart_name``: a PNG file name to embed)."""
    api = report["api_model"]
    lines = [f"# swarmd cost report: {_when(report['since_ts'])} to {_when(report['until_ts'])} (local time)", ""]
    budget_unresolved = (report.get("objectives") or {}).get("unresolved_by_reason", {}).get("budget", 0)
    lines += _table(["", "value"], [
        ["calls (model calls, every tier)", report["calls"]],
        ["requests (routed inputs)", report["requests"]],
        ["spent", _usd(report["cost_usd"])],
        ["answered requests", report["answered"]],
        [f"answered requests, API tier only ({api['model']} at ${api['price_per_mtok_in']:g} in / "
         f"${api['price_per_mtok_out']:g} out per million tokens)", _usd(report["pure_api_cost_usd"])],
        ["saved on answered requests (API-only − spent)", f"{_usd(report['savings_usd'])} ({report['savings_pct']:.1f}%)"],
        ["unresolved requests (nothing saved)", report["unresolved"]],
        ["unresolved requests, API tier only (still owed)", _usd(report["unresolved_api_cost_usd"])],
        ["every call priced at the API tier (reference)", _usd(report["all_calls_at_api_usd"])],
        ["escalation rate (escalated ÷ calls with a reply)", f"{100 * report['escalation_rate']:.1f}%"],
        ["objectives unresolved: budget", budget_unresolved],
        ["failed calls (errors)", report["errors"]],
    ])
    lines += ["", "## By tier", ""]
    lines += _table(["tier", "calls", "tokens in", "tokens out", "cost (USD)"], [
        [t, v["calls"], v["tokens_in"], v["tokens_out"], f"{v['cost_usd']:.6f}"] for t, v in report["by_tier"].items()])
    lines += ["", "## By model", ""]
    lines += _table(["tier/model", "calls", "tokens in", "tokens out", "cost (USD)"], [
        [m, v["calls"], v["tokens_in"], v["tokens_out"], f"{v['cost_usd']:.6f}"] for m, v in report["by_model"].items()])
    lines += ["", "## By action", ""]
    lines += _table(["action", "requests", "calls", "escalation rate", "unresolved", "cost (USD)",
                     "API-only, answered (USD)", "saved (USD)", "API-only, unresolved (USD)"], [
        [a, v["requests"], v["calls"], f"{100 * v['escalation_rate']:.1f}%", v["unresolved"],
         f"{v['cost_usd']:.6f}", f"{v['pure_api_cost_usd']:.6f}", f"{v['savings_usd']:.6f}",
         f"{v['unresolved_api_cost_usd']:.6f}"]
        for a, v in sorted(report["by_action"].items(), key=lambda kv: -kv[1]["cost_usd"])])
    objectives = report.get("objectives")
    if objectives is not None:
        lines += ["", "## Objectives finished in the window", ""]
        lines += _table(["state", "objectives"], sorted(objectives["by_state"].items()))
        checked = objectives.get("verification") or {}
        if checked.get("unverified"):
            lines += ["", f"**Unverified: {checked['unverified']} answers** were accepted by a quality gate that has "
                      "not shown its risk bound on this deployment (the shipped calibration, fitted on another "
                      f"repository; {checked.get('verified', 0)} by a gate verified here). `swarmctl memory stats` "
                      "says how many reviews (`swarmctl feedback`) let consolidation check it."]
        if objectives["unresolved_by_reason"]:
            lines += ["", "Unresolved by reason:", ""]
            lines += _table(["reason", "objectives"], sorted(objectives["unresolved_by_reason"].items(),
                                                             key=lambda kv: -kv[1]))
        if objectives.get("by_strategy"):
            lines += ["", "By routing strategy:", ""]
            lines += _table(["strategy", "objectives", "done", "unresolved", "failed", "cost (USD)"], [
                [name, v["objectives"], v["done"], v["unresolved"], v["failed"], f"{v['cost_usd']:.6f}"]
                for name, v in sorted(objectives["by_strategy"].items())])
    if report.get("by_mode"):
        lines += ["", "## Agent objectives: learner, follower and supervised runs", ""]
        lines += _table(["mode", "calls", "cost (USD)"], [
            [m, v["calls"], f"{v['cost_usd']:.6f}"] for m, v in sorted(report["by_mode"].items())])
    if report.get("traces"):
        lines += ["", "## Savings per execution trace", ""]
        lines += _table(["trace", "goal", "followed", "supervised", "failed", "learner cost (USD)",
                         "replays' model calls (USD)", "saved (USD)"], [
            [t["trace"], t["goal"][:60], t["followed"], t["supervised"], t["failed"], f"{t['learner_cost_usd']:.6f}",
             f"{t['replay_calls_usd']:.6f}", f"{t['saved_usd']:.6f}"] for t in report["traces"]])
    if chart_name:
        lines += ["", f"![spend by action and calls by tier]({chart_name})"]
    lines += ["", "Definitions: a request's final call is its accepted or rejected row (or an error at its last "
              "tier); it is answered when that call was accepted, unresolved otherwise. API-only prices that "
              "call's tokens at the API tier; the savings compare the answered requests' API-only cost with "
              "everything spent (unresolved requests' calls included); an unresolved request saved nothing, and "
              "its API-only cost is shown apart. Local token counts come from the local tokenizer, so API-only "
              "is an estimate. Source: `" + report.get("db", "?") + "`.", ""]
    return "\n".join(lines)


def summary_line(report: dict, path: str | Path | None = None) -> str:
    """One log line: window, calls, spend, the answered requests' API-only cost
    and the savings on them, escalation, the unresolved requests and their
    API-only cost (not saved)."""
    hours = (report["until_ts"] - report["since_ts"]) / 3600
    return (f"cost report {_when(report['since_ts'])} +{hours:.0f}h: {report['calls']} calls, "
            f"{report['requests']} requests, {report['answered']} answered: spent ${report['cost_usd']:.4f}, "
            f"API-only ${report['pure_api_cost_usd']:.4f}, saved ${report['savings_usd']:.4f} "
            f"({report['savings_pct']:.1f}%), escalation {100 * report['escalation_rate']:.1f}%; "
            f"unresolved {report['unresolved']} (API-only ${report['unresolved_api_cost_usd']:.4f}, not saved)"
            + (f" -> {path}" if path else ""))


def write_report(report: dict, out_dir: str | Path, label: str) -> tuple[Path, Path]:
    """Write the Markdown and the PNG chart to ``out_dir`` (created); returns
    their paths.  File stem: ``costs-<until, local YYYY-MM-DD_HHMM>-<label>``."""
    from swarmd.costs.charts import plot_report  # heavy: matplotlib, only when a report is written

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"costs-{time.strftime('%Y-%m-%d_%H%M', time.localtime(report['until_ts']))}-{label}"
    png = out / f"{stem}.png"
    plot_report(report, png)
    md = out / f"{stem}.md"
    md.write_text(render_markdown(report, png.name), encoding="utf-8")
    return md, png


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time from ``--since``: ``30m``, ``12h``, ``7d``, ``2w`` (ago), or a
    local date/time ``YYYY-MM-DD[ HH:MM]``.  Raises ``ValueError``."""
    now = time.time() if now is None else now
    text = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(text, fmt))
        except ValueError:
            continue
    raise ValueError(f"--since: expected a duration such as 30m, 12h, 7d, 2w or a date YYYY-MM-DD[ HH:MM], "
                     f"found {text!r}")
