"""Ledger rows for reports and cost analysis, and their summary.

:func:`read_rows` reads rows from the SQLite store (table ``ledger``, :mod:`swarmd.costs.ledger`),
a bare ledger file, or a JSONL export (one row per line; a JSON array too).  Required fields:
``action, tier, tokens_in, tokens_out, cost_usd, outcome``; ``ts`` (unix seconds) for windows.

:func:`summarize` holds the definitions ``swarmctl report``, the daily report and
``cost_analysis.py --from-ledger`` share: a **call** is one row (``MEMORY`` rows cost 0); a
**request** ends in one final row; it is **answered** when that row is ``accepted``, else
**unresolved**; **pure-API cost** prices each answered request at the API model's prices,
**unresolved API cost** the unresolved ones (never saved); **savings** = pure-API cost −
spend.  Each definition in full: docs/design.md.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from swarmd.config import Config
from swarmd.costs.pricing import UNPRICED_TIERS, api_model, price_usd
from swarmd.errors import BadInput
from swarmd.store.db import connect
from swarmd.jsonl import read_jsonl

REQUIRED = ("action", "tier", "tokens_in", "tokens_out", "cost_usd", "outcome")
COLUMNS = ("ts", "objective_id", "action", "tier", "provider", "model", "tokens_in", "tokens_out", "cost_usd",
           "latency_ms", "confidence", "outcome", "error", "mode")


class LedgerReadError(BadInput, ValueError):
    """A ledger source that cannot be read (exit 2); the message names the file (and line)."""


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def read_rows(path: str | Path, since_ts: float | None = None, until_ts: float | None = None) -> list[dict]:
    """Ledger rows (dicts with :data:`COLUMNS`) with ``since_ts <= ts < until_ts``
    (unix seconds; ``None`` = open), oldest first.

    Raises :class:`LedgerReadError` for a missing file, a SQLite file without
    a ``ledger`` table or a bad JSON array, :class:`swarmd.jsonl.JsonlError`
    (also a ``ValueError``) listing every JSONL line that is not a ledger row
    (``file:line: why``).
    """
    p = Path(path)
    if not p.is_file():
        raise LedgerReadError(f"{p}: no such file")
    if _is_sqlite(p):
        sql, args = "SELECT * FROM ledger WHERE 1=1", []
        if since_ts is not None:
            sql, args = sql + " AND ts >= ?", args + [since_ts]
        if until_ts is not None:
            sql, args = sql + " AND ts < ?", args + [until_ts]
        conn = connect(p, readonly=True)
        try:
            return [dict(r) for r in conn.execute(sql + " ORDER BY ts, id", args)]
        except sqlite3.DatabaseError as exc:
            raise LedgerReadError(f"{p}: not a swarmd ledger ({exc})") from None
        finally:
            conn.close()
    return [r for r in _read_json_rows(p)
            if (since_ts is None or r["ts"] >= since_ts) and (until_ts is None or r["ts"] < until_ts)]


def _read_json_rows(p: Path) -> list[dict]:
    """Ledger rows of a JSON array or a JSONL export (:func:`swarmd.jsonl.read_jsonl`:
    every bad line named), oldest first."""
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise LedgerReadError(f"{p}: not JSON ({exc})") from None
        rows = []
        for n, item in enumerate(items, 1):
            try:
                rows.append(_ledger_row(item))
            except ValueError as exc:
                raise LedgerReadError(f"{p}: row {n}: {exc}") from None
    else:
        rows = read_jsonl(p, _ledger_row, allow_empty=True)
    rows.sort(key=lambda r: r["ts"])
    return rows


def _ledger_row(item) -> dict:
    """One exported ledger row with exactly the :data:`COLUMNS` (``ts`` a float);
    raises ``ValueError`` naming what is missing."""
    if not isinstance(item, dict):
        raise ValueError(f"expected a JSON object, found {type(item).__name__}")
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        raise ValueError(f"missing ledger field(s) {', '.join(missing)}")
    row = {c: item.get(c) for c in COLUMNS}
    row["ts"] = float(row["ts"] or 0.0)
    return row


def write_jsonl(rows: list[dict], path: str | Path) -> int:
    """Write ledger rows as JSONL (the :data:`COLUMNS`); returns the count."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({c: row.get(c) for c in COLUMNS}) + "\n")
    return len(rows)


def read_objectives(path: str | Path, since_ts: float | None = None, until_ts: float | None = None) -> dict | None:
    """Objectives that finished in the window (store only): ``{"by_state":
    {state: n}, "unresolved_by_reason": {reason: n}, "by_strategy":
    {strategy: {"objectives", "done", "unresolved", "failed", "cost_usd"}},
    "verification": {"verified": n, "unverified": n}}`` (strategy ``cascade``
    for objectives stored before strategies existed; ``verification``: done
    objectives whose accepted attempt records its quality gate, ``learned`` =
    verified on this deployment, ``shipped`` = unverified, see
    :func:`swarmd.router.router.verification_of`), or
    ``None`` when the source holds no objectives at all: a JSONL export, a
    ledger file from before schema versioning (no ``objectives`` table), or a
    ledger written by the router alone (``swarmctl ask``, benches: the table
    exists, empty)."""
    p = Path(path)
    if not p.is_file() or not _is_sqlite(p):
        return None
    conn = connect(p, readonly=True)
    try:
        if conn.execute("SELECT 1 FROM objectives LIMIT 1").fetchone() is None:
            return None
        columns = {r["name"] for r in conn.execute("PRAGMA table_info(objectives)")}
        strategy = "strategy" if "strategy" in columns else "NULL"      # a file not migrated to version 9
        window, args = "o.finished_at IS NOT NULL", []
        if since_ts is not None:
            window, args = window + " AND o.finished_at >= ?", args + [since_ts]
        if until_ts is not None:
            window, args = window + " AND o.finished_at < ?", args + [until_ts]
        found = conn.execute(f"SELECT state, reason, {strategy} AS strategy, cost_usd FROM objectives o "
                             f"WHERE {window}", args).fetchall()
        gates = dict(conn.execute(
            "SELECT json_extract(a.data, '$.gate'), COUNT(*) FROM objectives o JOIN attempts a "
            f"ON a.objective_id = o.id WHERE {window} AND o.state = 'done' "
            "AND json_extract(a.data, '$.outcome') = 'accepted' AND json_extract(a.data, '$.gate') IS NOT NULL "
            "GROUP BY 1", args).fetchall())
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    by_state: dict[str, int] = {}
    reasons: dict[str, int] = {}
    by_strategy: dict[str, dict] = {}
    for state, reason, strategy, cost in found:
        by_state[state] = by_state.get(state, 0) + 1
        if state == "unresolved":
            key = reason or "?"
            key = key if key == "budget" or len(key) <= 60 else key[:57] + "..."
            reasons[key] = reasons.get(key, 0) + 1
        bucket = by_strategy.setdefault(strategy or "cascade", {"objectives": 0, "done": 0, "unresolved": 0,
                                                                "failed": 0, "cost_usd": 0.0})
        bucket["objectives"] += 1
        if state in bucket:
            bucket[state] += 1
        bucket["cost_usd"] += cost or 0.0
    return {"by_state": by_state, "unresolved_by_reason": reasons, "by_strategy": by_strategy,
            "verification": {"verified": gates.get("learned", 0), "unverified": gates.get("shipped", 0)}}


def _bucket() -> dict:
    return {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}


def _add(bucket: dict, row: dict) -> None:
    bucket["calls"] += 1
    bucket["tokens_in"] += int(row["tokens_in"] or 0)
    bucket["tokens_out"] += int(row["tokens_out"] or 0)
    bucket["cost_usd"] += float(row["cost_usd"] or 0.0)


def is_final(row: dict, last_tier: dict[str, str]) -> bool:
    """True for the row that ends its request (see the module docstring).
    ``last_tier``: action → last tier of its chain."""
    outcome = row["outcome"]
    return outcome in ("accepted", "rejected") or (outcome == "error" and row["tier"] == last_tier.get(row["action"]))


def summarize(rows: list[dict], config: Config) -> dict:
    """Spend and behaviour of ``rows`` (see the module docstring for definitions).

    Returns ``{"calls", "requests", "tokens_in", "tokens_out", "cost_usd",
    "answered", "pure_api_cost_usd", "unresolved_api_cost_usd",
    "all_calls_at_api_usd", "savings_usd", "savings_pct", "escalations",
    "escalation_rate", "unresolved", "errors", "first_ts",
    "last_ts", "api_model": {"model", "price_per_mtok_in", "price_per_mtok_out"},
    "by_tier": {tier: bucket}, "by_model": {"tier/model": bucket},
    "by_mode": {"learner"|"follower": bucket} (rows of agent runs only),
    "by_action": {action: bucket + {"requests", "accepted", "escalated",
    "rejected", "errors", "answered", "unresolved", "escalation_rate",
    "pure_api_cost_usd", "unresolved_api_cost_usd", "savings_usd"}}}`` where a bucket is ``{"calls", "tokens_in",
    "tokens_out", "cost_usd"}``.  Money in USD; ``savings_pct`` in percent of
    the pure-API cost (0 when that is 0).  ``pure_api_cost_usd`` covers the
    answered requests only, ``unresolved_api_cost_usd`` the unresolved ones.
    """
    api = api_model(config)
    last_tier = {a: config.chain_from(a)[-1] for a in config.actions}
    total, by_tier, by_model, by_action, by_mode = _bucket(), {}, {}, {}, {}
    pure_api = unresolved_api = all_at_api = 0.0
    for row in rows:
        _add(total, row)
        _add(by_tier.setdefault(row["tier"], _bucket()), row)
        _add(by_model.setdefault(f"{row['tier']}/{row.get('model') or '?'}", _bucket()), row)
        if row.get("mode"):
            _add(by_mode.setdefault(row["mode"], _bucket()), row)
        a = by_action.setdefault(row["action"], {**_bucket(), "requests": 0, "accepted": 0, "escalated": 0,
                                                 "rejected": 0, "errors": 0, "answered": 0, "unresolved": 0,
                                                 "pure_api_cost_usd": 0.0, "unresolved_api_cost_usd": 0.0})
        _add(a, row)
        outcome = row["outcome"]
        a[{"accepted": "accepted", "escalated": "escalated", "rejected": "rejected"}.get(outcome, "errors")] += 1
        at_api = price_usd(api, int(row["tokens_in"] or 0), int(row["tokens_out"] or 0))
        all_at_api += at_api
        if is_final(row, last_tier):
            a["requests"] += 1
            if outcome == "accepted":
                a["answered"] += 1
                a["pure_api_cost_usd"] += at_api
                pure_api += at_api
            else:
                a["unresolved"] += 1
                a["unresolved_api_cost_usd"] += at_api
                unresolved_api += at_api
    order = {t: i for i, t in enumerate((*UNPRICED_TIERS, *config.escalation.chain))}
    by_tier = dict(sorted(by_tier.items(), key=lambda kv: order.get(kv[0], len(order))))
    by_model = dict(sorted(by_model.items(), key=lambda kv: order.get(kv[0].split("/", 1)[0], len(order))))
    for a in by_action.values():
        replied = a["accepted"] + a["escalated"] + a["rejected"]
        a["escalation_rate"] = a["escalated"] / replied if replied else 0.0
        a["savings_usd"] = a["pure_api_cost_usd"] - a["cost_usd"]
    replied = sum(a["accepted"] + a["escalated"] + a["rejected"] for a in by_action.values())
    escalations = sum(a["escalated"] for a in by_action.values())
    savings = pure_api - total["cost_usd"]
    return {
        **total,
        "requests": sum(a["requests"] for a in by_action.values()),
        "answered": sum(a["answered"] for a in by_action.values()),
        "pure_api_cost_usd": pure_api, "unresolved_api_cost_usd": unresolved_api, "all_calls_at_api_usd": all_at_api,
        "savings_usd": savings, "savings_pct": 100 * savings / pure_api if pure_api else 0.0,
        "escalations": escalations, "escalation_rate": escalations / replied if replied else 0.0,
        "unresolved": sum(a["unresolved"] for a in by_action.values()),
        "errors": sum(a["errors"] for a in by_action.values()),
        "first_ts": rows[0]["ts"] if rows else None, "last_ts": rows[-1]["ts"] if rows else None,
        "api_model": {"model": api.model, "price_per_mtok_in": api.price_per_mtok_in,
                      "price_per_mtok_out": api.price_per_mtok_out},
        "by_tier": by_tier, "by_model": by_model, "by_action": by_action, "by_mode": by_mode,
    }
