"""The cost ledger: one SQLite row per model call.

Table ``ledger`` in the store (``memory.db``; created by migration 1 of
:mod:`swarmd.store.schema`, ``mode`` added by migration 10): ``ts`` (unix seconds),
``objective_id``, ``action``, ``tier``, ``provider``, ``model``, ``tokens_in``,
``tokens_out``, ``cost_usd`` (USD), ``latency_ms``, ``confidence``, ``outcome``
(``accepted``: the gate passed the answer; ``escalated``: it did not and a further tier
was tried; ``rejected``: it did not and no tier was left; ``error``: the call failed,
reason in ``error``) and ``mode`` (``learner`` | ``follower`` | ``supervised`` for calls of
agent objectives and trace replays, else NULL).

:class:`LedgerRow` is one row; :class:`Ledger` appends and reads them.  With
``write_behind=True`` (``swarmctl ask``) :meth:`Ledger.record` queues the row for a
background thread; reads and :meth:`Ledger.close` wait for the queue first.
"""

from __future__ import annotations

import atexit
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, fields
from pathlib import Path

from loguru import logger

from swarmd.store.db import transaction
from swarmd.store.schema import open_db


#: ``LedgerRow.mode`` of an agent objective's calls (see the module docstring)
LEARNER, FOLLOWER, SUPERVISED = "learner", "follower", "supervised"
#: the ``tier`` of a trace replay's row (no model call; :mod:`swarmd.agent.follower`)
TRACE_TIER = "TRACE"
#: the ``tier`` of an answer served by the learning memory's answer cache (no model call, cost 0;
#: :mod:`swarmd.memory.cache`), asked before the escalation chain
MEMORY_TIER = "MEMORY"


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
    mode: str | None = None

    def __post_init__(self):
        if not self.ts:
            self.ts = time.time()


_COLUMNS = [f.name for f in fields(LedgerRow)]
_INSERT = f"INSERT INTO ledger ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def insert_row(conn: sqlite3.Connection, row: LedgerRow) -> None:
    """Append ``row`` to the ``ledger`` table on ``conn`` (caller holds any lock/transaction)."""
    conn.execute(_INSERT, [getattr(row, c) for c in _COLUMNS])   # not asdict(): it deep-copies every field


class Ledger:
    """Append-only cost ledger over one SQLite file (created and migrated to
    the current schema if needed; the daemon's ``memory.db`` or a file of its
    own).  Thread-safe.  ``write_behind``: rows are written by a background
    thread, batched (module docstring).  Raises
    :class:`~swarmd.store.schema.SchemaTooNew` or ``sqlite3.Error`` when the
    file cannot be opened."""

    #: seconds the writer waits after a failed write before it tries again
    RETRY_S = 1.0

    def __init__(self, path: str | Path, write_behind: bool = False):
        self.path = str(path)
        self._conn = open_db(path)
        self._lock = threading.Lock()
        self._pending: list[LedgerRow] = []
        self._wake = threading.Condition(threading.Lock())     # guards _pending and _writing
        self._writing = False
        self._closed = False
        self._writer: threading.Thread | None = None
        if write_behind:
            self._writer = threading.Thread(target=self._write_loop, name="swarmd-ledger", daemon=True)
            self._writer.start()
            atexit.register(_close_at_exit, weakref.ref(self))

    def record(self, row: LedgerRow) -> None:
        """Append one row (write-behind: queue it; it is written within milliseconds)."""
        if self._writer is None:
            with self._lock:
                insert_row(self._conn, row)
            return
        with self._wake:
            self._pending.append(row)
            self._wake.notify()

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Wait until every row recorded so far is written, at most ``timeout_s``
        seconds (twice SQLite's busy timeout).  Returns ``False`` when rows are
        still queued (the writer is failing: its errors are logged), ``True``
        otherwise (always without write-behind)."""
        if self._writer is None:
            return True
        deadline = time.monotonic() + timeout_s
        with self._wake:
            while (self._pending or self._writing) and self._writer.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.1))
            return not self._pending

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:            # closed and drained
                    return
                batch, self._pending, self._writing = self._pending, [], True
            try:
                with self._lock, transaction(self._conn):
                    for row in batch:
                        insert_row(self._conn, row)
            except Exception:
                logger.exception("cost ledger: could not write {} rows to {} (retrying in {:.0f} s)",
                                 len(batch), self.path, self.RETRY_S)
                with self._wake:
                    self._pending[:0] = batch
                    self._writing = False
                    self._wake.notify_all()
                    if self._closed:
                        return                  # closing: the rows cannot be written
                    self._wake.wait(self.RETRY_S)
                continue
            with self._wake:
                self._writing = False
                self._wake.notify_all()

    def rows(self, objective_id: str | None = None, since_ts: float | None = None) -> list[dict]:
        """Rows as dicts, oldest first, optionally for one objective or since a unix time."""
        self.flush()
        sql, args = "SELECT * FROM ledger WHERE 1=1", []
        if objective_id is not None:
            sql, args = sql + " AND objective_id = ?", args + [objective_id]
        if since_ts is not None:
            sql, args = sql + " AND ts >= ?", args + [since_ts]
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def close(self) -> None:
        """Write queued rows (write-behind), then close the connection.  Idempotent."""
        if self._writer is not None:
            with self._wake:
                self._closed = True
                self._wake.notify_all()
            self._writer.join()
        with self._lock:
            self._conn.close()


def _close_at_exit(ref: weakref.ref) -> None:
    """atexit hook: write a still-open write-behind ledger's queued rows."""
    ledger = ref()
    if ledger is not None and not ledger._closed:
        ledger.close()
