"""The cost ledger: one SQLite row per model call.

Table ``ledger`` (in the store, ``memory.db`` by default)::

    id INTEGER PK, ts REAL (unix seconds), objective_id TEXT NULL,
    action TEXT, tier TEXT, provider TEXT, model TEXT,
    tokens_in INTEGER, tokens_out INTEGER, cost_usd REAL,
    latency_ms REAL, confidence REAL NULL,
    outcome TEXT  -- accepted | escalated | rejected | error
    error TEXT NULL

``outcome``: *accepted* the quality gate passed the answer; *escalated* it did
not and a further tier was tried; *rejected* it did not and no tier was left;
*error* the call failed (the reason is in ``error``).

The table is created by migration 1 of :mod:`swarmd.store.schema`; the file
is opened with :func:`swarmd.store.schema.open_db` (WAL, busy timeout), so
processes on one host can append concurrently.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from swarmd.store.schema import open_db


@dataclass
class LedgerRow:
    """One model call.  Units: ``ts`` unix seconds, ``cost_usd`` USD,
    ``latency_ms`` milliseconds, tokens as the backend counted them."""

    action: str
    tier: str
    provider: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    confidence: float | None
    outcome: str
    objective_id: str | None = None
    error: str | None = None
    ts: float = 0.0

    def __post_init__(self):
        if not self.ts:
            self.ts = time.time()


_COLUMNS = [f.name for f in fields(LedgerRow)]


def insert_row(conn: sqlite3.Connection, row: LedgerRow) -> None:
    """Append ``row`` to the ``ledger`` table on ``conn`` (caller holds any lock/transaction)."""
    values = asdict(row)
    conn.execute(f"INSERT INTO ledger ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                 [values[c] for c in _COLUMNS])


class Ledger:
    """Append-only cost ledger over one SQLite file (created and migrated to
    the current schema if needed; the daemon's ``memory.db`` or a file of its
    own).  Thread-safe.  Raises :class:`~swarmd.store.schema.SchemaTooNew` or
    ``sqlite3.Error`` when the file cannot be opened."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._conn = open_db(path)
        self._lock = threading.Lock()

    def record(self, row: LedgerRow) -> None:
        """Append one row."""
        with self._lock:
            insert_row(self._conn, row)

    def rows(self, objective_id: str | None = None, since_ts: float | None = None) -> list[dict]:
        """Rows as dicts, oldest first, optionally for one objective or since a unix time."""
        sql, args = "SELECT * FROM ledger WHERE 1=1", []
        if objective_id is not None:
            sql, args = sql + " AND objective_id = ?", args + [objective_id]
        if since_ts is not None:
            sql, args = sql + " AND ts >= ?", args + [since_ts]
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def spend_by_tier(self, since_ts: float) -> dict[str, dict]:
        """``{tier: {"calls": n, "cost_usd": x}}`` for rows since a unix time."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT tier, COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost "
                "FROM ledger WHERE ts >= ? GROUP BY tier", (since_ts,))
            return {r["tier"]: {"calls": r["calls"], "cost_usd": r["cost"]} for r in cur}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
