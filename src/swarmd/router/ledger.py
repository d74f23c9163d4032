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

The database runs in WAL mode with a busy timeout, so worker processes on one
host can append concurrently.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    objective_id TEXT,
    action TEXT NOT NULL,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_ms REAL NOT NULL,
    confidence REAL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS ledger_ts ON ledger(ts);
CREATE INDEX IF NOT EXISTS ledger_objective ON ledger(objective_id);
"""


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


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating) a SQLite store with WAL and a 30 s busy timeout."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


class Ledger:
    """Append-only cost ledger over one SQLite file.  Thread-safe."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)
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
