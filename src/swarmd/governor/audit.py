"""Audit log: every decision as a row of SQLite table ``audit_log`` plus a loguru line.

Columns: ``id`` (autoincrement), ``ts`` (UTC ISO-8601 with microseconds),
``objective_id`` (text or NULL), ``tool``, ``args`` (JSON, secrets redacted by
:func:`redact`), ``decision``, ``rule``, ``reason``. The table is created by
migration 3 of :mod:`swarmd.store.schema`; the caller chooses the database
file (the project's store is ``memory.db``), opened with
:func:`swarmd.store.schema.open_db` beside the other tables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loguru import logger

from swarmd.store.schema import open_db

from .secrets import redact  # noqa: F401 - the one redactor (tool outputs, prompts, logs, traces, audit entries)

@dataclass(frozen=True, slots=True)
class AuditRow:
    """One ``audit_log`` row (``args`` already redacted, decoded from JSON)."""

    id: int
    ts: str
    objective_id: str | None
    tool: str
    args: Any
    decision: str
    rule: str
    reason: str


def audit_row(objective_id: str | None, tool: str, args: Any, decision: Any,
              ts: str | None = None) -> dict[str, Any]:
    """One ``audit_log`` row as a JSON-ready dict, secrets already redacted.

    Keys: ``ts`` (UTC ISO-8601, now unless given), ``objective_id``, ``tool``
    (at most 100 characters), ``args`` (JSON text, redacted, at most 20000
    characters), ``decision``, ``rule``, ``reason`` (redacted). ``decision``
    is a :class:`~swarmd.governor.Decision` (anything with ``decision``,
    ``rule`` and ``reason`` attributes).
    """
    ts = ts or datetime.now(timezone.utc).isoformat(timespec="microseconds")
    safe_args = redact(args if isinstance(args, (dict, list, str)) else repr(args))
    return {"ts": ts, "objective_id": objective_id, "tool": str(tool)[:100],
            "args": json.dumps(safe_args, ensure_ascii=False, sort_keys=True)[:20000],
            "decision": decision.decision, "rule": decision.rule, "reason": redact(decision.reason)}


def log_row(row: dict[str, Any]) -> None:
    """The loguru INFO line for one audit row: ``governor <decision> objective=... tool=... rule=...``."""
    logger.info("governor {} objective={} tool={} rule={} reason={} args={}", row["decision"],
                row["objective_id"], row["tool"], row["rule"], row["reason"], row["args"][:500])


def insert_rows(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert :func:`audit_row` dicts into ``audit_log`` on ``conn`` (no commit:
    the caller owns the transaction). Raises ``sqlite3.Error`` (e.g. for a
    decision other than allow/deny/ask) or ``KeyError`` for a row missing a key."""
    conn.executemany(
        "INSERT INTO audit_log (ts, objective_id, tool, args, decision, rule, reason) VALUES (?,?,?,?,?,?,?)",
        [(r["ts"], r["objective_id"], r["tool"], r["args"], r["decision"], r["rule"], r["reason"]) for r in rows])


class AuditBuffer:
    """An audit sink for processes without the database (RQ workers): collects
    :func:`audit_row` dicts in memory and writes the loguru line at once.

    Pass it as ``Governor(policy, audit=AuditBuffer())``; :meth:`drain`
    returns and clears the rows, which travel to the daemon in the worker's
    ``finished`` event and are inserted there with :func:`insert_rows`.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, objective_id: str | None, tool: str, args: Any, decision: Any) -> int:
        """Keep one decision (redacted) and log it; returns how many rows are held."""
        row = audit_row(objective_id, tool, args, decision)
        log_row(row)
        with self._lock:
            self._rows.append(row)
            return len(self._rows)

    def drain(self) -> list[dict[str, Any]]:
        """The rows collected so far, oldest first; the buffer is emptied."""
        with self._lock:
            rows, self._rows = self._rows, []
        return rows


class AuditLog:
    """Appends decisions to ``audit_log`` in the SQLite file ``db_path``.

    Thread-safe (one connection guarded by a lock). Raises ``sqlite3.Error`` if
    the file cannot be opened or migrated (:func:`swarmd.store.schema.open_db`),
    :class:`~swarmd.store.schema.SchemaTooNew` if a newer swarmd wrote it.
    """

    def __init__(self, db_path: str | Path):
        self.db_path = str(db_path)
        self._lock = threading.Lock()
        self._conn = open_db(self.db_path)

    def record(self, objective_id: str | None, tool: str, args: Any, decision: Any) -> int:
        """Append one decision (a :class:`~swarmd.governor.Decision`); returns the row id.

        ``args`` is redacted before storing and logging. Also emits one loguru
        INFO line ``governor <decision> ...``.
        """
        row = audit_row(objective_id, tool, args, decision)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO audit_log (ts, objective_id, tool, args, decision, rule, reason) VALUES (?,?,?,?,?,?,?)",
                (row["ts"], row["objective_id"], row["tool"], row["args"], row["decision"], row["rule"],
                 row["reason"]))
            row_id = int(cur.lastrowid or 0)
        log_row(row)
        return row_id

    def query(self, objective_id: str | None = None, decision: str | None = None, limit: int = 1000) -> list[AuditRow]:
        """Rows newest first, filtered by ``objective_id`` and/or ``decision`` (exact match)."""
        sql = "SELECT id, ts, objective_id, tool, args, decision, rule, reason FROM audit_log"
        where, params = [], []
        if objective_id is not None:
            where.append("objective_id = ?")
            params.append(objective_id)
        if decision is not None:
            where.append("decision = ?")
            params.append(decision)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        out = []
        for r in rows:
            try:
                args = json.loads(r[4])
            except ValueError:
                args = r[4]
            out.append(AuditRow(r[0], r[1], r[2], r[3], args, r[5], r[6], r[7]))
        return out

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()


def query_audit(db_path: str | Path, objective_id: str | None = None, decision: str | None = None,
                limit: int = 1000) -> list[AuditRow]:
    """Open ``db_path`` and return matching rows (see :meth:`AuditLog.query`)."""
    log = AuditLog(db_path)
    try:
        return log.query(objective_id, decision, limit)
    finally:
        log.close()
