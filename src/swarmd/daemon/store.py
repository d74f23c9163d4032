"""The daemon's objective store (``memory.db``): objectives, their attempts, and the rows
that arrive with worker events (cost ledger, audit log, traces), each event in one transaction.

Tables (created by :mod:`swarmd.store.schema`): ``objectives`` (one row per objective:
fields, ``state``, ``retry_of``, timestamps in unix seconds, final answer, confidence, tier,
model, cost in USD, escalations, reason); ``attempts`` (every model call, JSON of
:class:`swarmd.router.Attempt`); ``events_seen`` (events already persisted: none counted
twice); ``ledger`` (:mod:`swarmd.costs.ledger`); ``traces`` (:mod:`swarmd.agent.traces`);
``audit_log`` (:mod:`swarmd.governor.audit`).

Only the daemon writes objectives; ``swarmctl`` and reports read.  Why the store lives in the
daemon, and each table's columns: docs/design.md.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from swarmd.governor.audit import insert_rows as insert_audit_rows
from swarmd.objectives import FINAL_STATES, STATES, Objective
from swarmd.costs.ledger import LedgerRow, insert_row
from swarmd.agent.traces import apply_trace_event
from swarmd.store.db import transaction
from swarmd.store.schema import open_db

#: The result fields of an objective row (columns of ``objectives``, keys of the
#: ``finished`` event's ``result``), as ``swarmctl show`` prints them.
RESULT_FIELDS = ("answer", "confidence", "tier", "model", "cost_usd", "escalations", "reason")


class Store:
    """The daemon's SQLite store at ``path`` (created and migrated if needed).
    Thread-safe (one connection guarded by a lock).  Raises
    :class:`~swarmd.store.schema.SchemaTooNew` or ``sqlite3.Error`` when the
    file cannot be opened."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._conn = open_db(path)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes
    def add_queued(self, obj: Objective) -> bool:
        """Record an objective as queued; False if it was already known."""
        return self.add_queued_many([obj])[0]

    def add_queued_many(self, objs: list[Objective]) -> list[bool]:
        """Record objectives as queued in one transaction; per objective, False
        if it was already known."""
        now = time.time()
        with self._lock, transaction(self._conn):
            return [self._conn.execute(
                "INSERT OR IGNORE INTO objectives (id, action, input, labels, priority, max_cost_usd, strategy, "
                "tags, state, submitted_at, queued_at, retry_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (o.id, o.action, o.input, json.dumps(o.labels), o.priority, o.max_cost_usd, o.strategy,
                 json.dumps(o.tags), "queued", o.submitted_at, now, o.retry_of)).rowcount == 1 for o in objs]

    def add_rejected_many(self, rows: list[dict]) -> list[bool]:
        """Record objectives the daemon's validation rejected as ``failed``
        (``finished_at`` now, their ``reason``) in one transaction, never to
        run; ``rows``: :func:`swarmd.objectives.rejected_record` dicts.  Per
        row, False if its id was already known (that objective is left as it was)."""
        now = time.time()
        with self._lock, transaction(self._conn):
            return [self._conn.execute(
                "INSERT OR IGNORE INTO objectives (id, action, input, labels, priority, max_cost_usd, strategy, "
                "tags, state, submitted_at, finished_at, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (r["id"], r["action"], r["input"], json.dumps(r["labels"]) if r["labels"] is not None else None,
                 r["priority"], r["max_cost_usd"], r["strategy"], json.dumps(r["tags"]), "failed",
                 r["submitted_at"], now, r["reason"])).rowcount == 1 for r in rows]

    def apply_event(self, event_id: str, kind: str, objective_id: str, payload: dict) -> bool:
        """Persist one worker event exactly once (False if ``event_id`` was seen).

        ``kind``: ``started`` (payload: worker), ``finished`` (payload: the
        worker's result: state, result fields, attempts, action), ``failed``
        (payload: reason) or ``resolved`` (a parked objective was approved,
        rejected or timed out and is queued again; payload: resolution, by).  Any payload
        may carry ``audit``: a list of :func:`swarmd.governor.audit.audit_row`
        dicts, inserted into ``audit_log``.  A final state (:data:`FINAL_STATES`)
        is never changed by a later event: see :meth:`persist_events`.
        """
        return self.apply_events([(event_id, kind, objective_id, payload)])[0]

    def apply_events(self, events: list[tuple[str, str, str, dict]]) -> list[bool]:
        """:meth:`apply_event` for many ``(event_id, kind, objective_id, payload)``
        in one transaction; raises (and writes nothing) if any is malformed."""
        return [new for new, _kept in self.persist_events(events)]

    def persist_events(self, events: list[tuple[str, str, str, dict]]) -> list[tuple[bool, str | None]]:
        """:meth:`apply_events`, telling per event ``(new, kept)``: ``new`` False
        if its id was seen already (then nothing is written); ``kept`` the final
        state the objective had already, when the event would have changed it
        (a ``started``, ``failed`` or ``finished`` arriving after ``done``, as
        when a worker dies after reporting and RQ then fails its job), else
        ``None``.  The state and result of a kept objective stay as they were;
        the attempts and cost-ledger rows of a late ``finished`` are still
        written (the calls were paid for).  Raises (and writes nothing) if any
        event is malformed."""
        out = []
        with self._lock, transaction(self._conn):
            for event_id, kind, objective_id, payload in events:
                cur = self._conn.execute("INSERT OR IGNORE INTO events_seen VALUES (?)", (event_id,))
                kept = self._apply(kind, objective_id, payload) if cur.rowcount else None
                out.append((bool(cur.rowcount), kept))
        return out

    def _final_state(self, oid: str) -> str | None:
        """The objective's state if it is final (``None`` if not, or if the objective is unknown)."""
        row = self._conn.execute("SELECT state FROM objectives WHERE id=?", (oid,)).fetchone()
        return row[0] if row is not None and row[0] in FINAL_STATES else None

    def _unless_final(self, assignments: str, values: tuple, oid: str) -> str | None:
        """``UPDATE objectives SET <assignments>`` (with ``values``) for ``oid``
        unless its state is final; returns the final state kept (``None``: written, or unknown objective)."""
        final = tuple(FINAL_STATES)
        cur = self._conn.execute(f"UPDATE objectives SET {assignments} WHERE id=? "
                                 f"AND state NOT IN ({','.join('?' * len(final))})", (*values, oid, *final))
        return None if cur.rowcount else self._final_state(oid)

    def _apply(self, kind: str, oid: str, payload: dict) -> str | None:
        """Write one new event; returns the final state kept instead of the event's (see :meth:`persist_events`)."""
        if payload.get("audit"):
            insert_audit_rows(self._conn, payload["audit"])
        if kind == "resolved":   # approve/reject/timeout of a parked objective: queued again
            self._conn.execute("UPDATE objectives SET state='queued', queued_at=? WHERE id=? "
                               "AND state='awaiting_approval'", (payload.get("ts", time.time()), oid))
            return None
        if kind == "started":
            return self._unless_final("state='running', started_at=?, worker=?",
                                      (payload.get("ts", time.time()), payload.get("worker")), oid)
        if kind == "failed":
            return self._unless_final("state='failed', finished_at=?, reason=?",
                                      (payload.get("ts", time.time()), payload.get("reason")), oid)
        if kind != "finished":
            raise ValueError(f"unknown event kind {kind!r}")
        state = payload["state"]
        assert state in STATES, state
        if state == "cancelled":   # cancelled while still in the objective stream: known here from now on
            self._conn.execute(
                "INSERT OR IGNORE INTO objectives (id, action, input, priority, tags, state, submitted_at) "
                "VALUES (?,?,?,?,?,?,?)", (oid, payload.get("action") or "", "", "normal", "[]", "queued",
                                            payload.get("ts", time.time())))
        result = payload.get("result", {})
        finished = payload.get("ts", time.time()) if state in FINAL_STATES else None
        skipped = json.dumps(payload["skipped"]) if payload.get("skipped") else None
        kept = self._unless_final("state=?, finished_at=?, answer=?, confidence=?, tier=?, model=?, cost_usd=?, "
                                  "escalations=?, reason=?, skipped=?",
                                  (state, finished, *[result.get(f) for f in RESULT_FIELDS], skipped), oid)
        base = self._conn.execute("SELECT COUNT(*) FROM attempts WHERE objective_id=?", (oid,)).fetchone()[0]
        action = payload.get("action", "")
        for i, attempt in enumerate(payload.get("attempts", [])):
            self._conn.execute("INSERT INTO attempts VALUES (?,?,?)", (oid, base + i, json.dumps(attempt)))
            row = LedgerRow(action=attempt.get("action") or action, objective_id=oid, mode=attempt.get("mode"),
                            **{k: attempt[k] for k in (
                "tier", "provider", "model", "tokens_in", "tokens_out", "cost_usd", "latency_ms",
                "confidence", "outcome", "error", "ts")})
            insert_row(self._conn, row)
        if payload.get("trace"):
            apply_trace_event(self._conn, oid, payload["trace"])
        return kept

    # ------------------------------------------------------------------ reads
    def get(self, objective_id: str) -> dict | None:
        """One objective (its columns) with its ``attempts`` list (dicts of
        :class:`swarmd.router.Attempt`: tier, model, outcome, confidence, threshold, cost_usd,
        latency_ms...) and ``skipped`` list (:func:`swarmd.router.router.skip_record` dicts:
        tier, model, reason_kind, detail; ``[]`` when none), or ``None``."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM objectives WHERE id=?", (objective_id,)).fetchone()
            if row is None:
                return None
            out = self._decoded(row)
            out["attempts"] = [json.loads(r[0]) for r in self._conn.execute(
                "SELECT data FROM attempts WHERE objective_id=? ORDER BY n", (objective_id,))]
            return out

    def audit_steps(self, objective_id: str) -> list[dict]:
        """The governor's decisions on ``objective_id``'s tool actions (``audit_log``), oldest
        first: ``{"n" (1-based), "ts", "tool", "args" (redacted, decoded), "decision"
        (allow/deny/ask), "rule", "reason"}``; ``[]`` when it made none (a label objective)."""
        with self._lock:
            rows = self._conn.execute("SELECT ts, tool, args, decision, rule, reason FROM audit_log "
                                      "WHERE objective_id=? ORDER BY id", (objective_id,)).fetchall()
        steps = []
        for n, (ts, tool, args, decision, rule, reason) in enumerate(rows, 1):
            try:
                args = json.loads(args)
            except ValueError:
                pass
            steps.append({"n": n, "ts": ts, "tool": tool, "args": args, "decision": decision, "rule": rule,
                          "reason": reason})
        return steps

    def page(self, state: str | None = None, action: str | None = None, since: float | None = None,
             q: str | None = None, limit: int = 50, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """Objectives newest first (by ``submitted_at``, then id), without
        attempts, as ``(rows, next)``: ``state``/``action`` equal, ``since``
        submitted at or after that unix time, ``q`` a substring of the input
        or the answer (case-insensitive for ASCII), at most ``limit`` rows
        (1-1000).  ``next``: the cursor of the following page (pass it back as
        ``cursor``), ``None`` on the last page.  Served from the indexes of
        migration 14 (``objectives_state_submitted``, ``objectives_submitted``).
        Raises ``ValueError`` for a malformed cursor or a ``limit`` out of range."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be 1-1000, found {limit}")
        where, args = [], []
        for column, value in (("state", state), ("action", action)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if since is not None:
            where.append("submitted_at>=?")
            args.append(since)
        if q:
            where.append("(instr(lower(input), lower(?)) > 0 OR instr(lower(COALESCE(answer,'')), lower(?)) > 0)")
            args += [q, q]
        if cursor:
            ts, sep, oid = cursor.partition(":")
            try:
                ts_value = float(ts)
            except ValueError:
                sep = ""
            if not sep or not oid:
                raise ValueError(f"cursor must be one this list returned as next, found {cursor[:80]!r}")
            where.append("(submitted_at < ? OR (submitted_at = ? AND id < ?))")
            args += [ts_value, ts_value, oid]
        sql = ("SELECT * FROM objectives" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY submitted_at DESC, id DESC LIMIT ?")
        with self._lock:
            rows = [self._decoded(r) for r in self._conn.execute(sql, (*args, limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (f"{rows[-1]['submitted_at']!r}:{rows[-1]['id']}" if more else None)

    @staticmethod
    def _decoded(row) -> dict:
        out = dict(row)
        out["labels"] = json.loads(out["labels"]) if out["labels"] else None
        out["tags"] = json.loads(out["tags"])
        if "skipped" in out:
            out["skipped"] = json.loads(out["skipped"]) if out["skipped"] else []
        return out

    def queued_before(self, ts: float) -> list[str]:
        """Ids of objectives still ``queued`` that were queued before unix time ``ts``."""
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT id FROM objectives WHERE state='queued' AND queued_at < ?", (ts,))]

    def counts(self) -> dict[str, int]:
        """Objectives by state: every state in :data:`STATES`, 0 when none."""
        with self._lock:
            found = dict(self._conn.execute("SELECT state, COUNT(*) FROM objectives GROUP BY state").fetchall())
        return {s: int(found.get(s, 0)) for s in STATES}

    def spend_since(self, since_ts: float) -> tuple[float, dict[str, dict]]:
        """(total USD, ``{tier: {"calls", "cost_usd"}}``) of ledger rows since a unix time."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT tier, COUNT(*), COALESCE(SUM(cost_usd),0) FROM ledger WHERE ts>=? GROUP BY tier",
                (since_ts,)).fetchall()
        by_tier = {t: {"calls": n, "cost_usd": c} for t, n, c in rows}
        return sum(v["cost_usd"] for v in by_tier.values()), by_tier

    def unfinished_ids(self) -> list[str]:
        """Ids of objectives not yet in a final state."""
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT id FROM objectives WHERE state IN ('queued', 'running', 'awaiting_approval')")]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
