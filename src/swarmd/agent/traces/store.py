"""Execution traces, the store: the ``traces`` table, matching and updates.

:class:`TraceStore` reads traces (workers: :meth:`TraceStore.match` finds the
trace a goal may follow) and applies the trace events workers report (the
daemon: :meth:`TraceStore.apply`, :func:`apply_trace_event` inside the store's
transaction).  One row per ``(id, version)`` in the store's SQLite file
(migration 8 of :mod:`swarmd.store.schema`): ``body`` the JSON of the
:class:`~swarmd.agent.traces.model.Trace`, statistics in columns.
Confidence rule (:func:`updated_confidence`): a new trace starts at
:data:`NEW_CONFIDENCE`; success ``c + (1 - c)*0.1``, failure ``0.7*c``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from loguru import logger

from swarmd.agent.traces.model import Param, StoredTrace, Trace, TraceError, signature_of
from swarmd.agent.traces.params import (MIN_EMBEDDING_SIMILARITY, UNSAFE_VALUE, extract_params, goal_representation,
                                        goal_similarity, represent, similarity)
from swarmd.store.schema import open_db
from swarmd.validation import validate

#: confidence of a new trace, and the update factors (the pattern's published rule)
NEW_CONFIDENCE = 0.75
SUCCESS_STEP = 0.1
FAILURE_FACTOR = 0.7


@dataclass
class Match:
    """A trace found for a goal: the stored trace, the goal's parameter
    ``values`` by name, the ``similarity``, and whether it may be followed
    (``follow``) — else ``why`` not; ``supervised``: followed only under
    supervision (its confidence is below the follow threshold but at least
    the supervision floor: the replay's outcome must be verified).
    ``missing``: the trace's quoted parameters the goal did not show as
    quoted text (a small model finds them: :func:`quote_span`, then match
    again); empty for a full match."""

    stored: StoredTrace
    values: dict[str, str]
    similarity: float
    follow: bool
    why: str | None = None
    missing: list[Param] = field(default_factory=list)
    supervised: bool = False


#: how far below ``min_similarity`` a goal missing quoted parameters may be
#: (its unquoted free-text words are extra tokens) to be worth a slot fill
PARTIAL_SLACK = 0.25


class TraceStore:
    """The ``traces`` table of one SQLite file (see the module docstring).

    ``path``: the store file (``<data dir>/memory.db``), migrated on open.
    Thread-safe only as far as :mod:`sqlite3` connections are (one per user).
    Raises ``sqlite3.Error`` / :class:`~swarmd.store.SchemaTooNew` on open.
    """

    def __init__(self, path: str | Path | None = None, conn: sqlite3.Connection | None = None):
        self._own = conn is None
        self.conn = open_db(path) if conn is None else conn

    def close(self) -> None:
        """Close the connection (if this store opened it)."""
        if self._own:
            self.conn.close()

    # ---- reading
    def load(self, row: sqlite3.Row) -> StoredTrace:
        """One row as a :class:`StoredTrace`; raises :class:`TraceError`
        naming the trace and every problem of a corrupted or edited body."""
        where = f"trace {row['id']} v{row['version']}"
        try:
            body = json.loads(row["body"])
        except ValueError as exc:
            raise TraceError(where, "", "a JSON trace body", f"invalid JSON ({exc})") from None
        trace = validate(Trace, body, TraceError, file=where)
        return StoredTrace(row["id"], row["version"], trace, row["confidence"], row["runs"], row["successes"],
                           row["failures"], row["saved_usd"], bool(row["active"]), bool(row["disabled"]),
                           row["created_at"], row["updated_at"])

    def rows(self, trace_id: str | None = None, all_versions: bool = False) -> list[sqlite3.Row]:
        """Raw rows, newest first: the active versions, or every version."""
        sql = "SELECT * FROM traces WHERE 1=1" + ("" if all_versions else " AND active=1") + \
            (" AND id=?" if trace_id else "") + " ORDER BY created_at DESC, version DESC"
        return self.conn.execute(sql, (trace_id,) if trace_id else ()).fetchall()

    def get(self, trace_id: str, version: int | None = None) -> StoredTrace:
        """One trace (the active version unless ``version``); raises
        :class:`TraceError` when missing or unusable."""
        if version is None:
            row = self.conn.execute("SELECT * FROM traces WHERE id=? ORDER BY active DESC, version DESC LIMIT 1",
                                    (trace_id,)).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM traces WHERE id=? AND version=?", (trace_id, version)).fetchone()
        if row is None:
            raise TraceError(f"trace {trace_id}", "", "a stored trace", "no such trace"
                             + (f" version {version}" if version else ""))
        return self.load(row)

    def candidates(self, signature: str) -> Iterable[StoredTrace]:
        """Active, enabled traces with ``signature``; unusable ones are logged and skipped."""
        for row in self.conn.execute("SELECT * FROM traces WHERE signature=? AND active=1 AND disabled=0",
                                     (signature,)):
            try:
                yield self.load(row)
            except TraceError as exc:
                logger.warning("trace not used: {}", str(exc).replace("\n", "; "))

    def match(self, goal: str, min_similarity: float, follow_threshold: float, min_success_rate: float,
              min_embedding_similarity: float = MIN_EMBEDDING_SIMILARITY,
              supervise_from: float | None = None) -> Match | None:
        """The most similar usable trace for ``goal`` with compatible
        parameters (same names and path suffixes; values free of shell
        syntax, quotes and globs, not starting with ``-``: they are
        substituted into commands) and similarity ≥ its kind's threshold
        (``min_similarity`` for ``tokens-v1``, ``min_embedding_similarity``
        for the embedding: :func:`goal_similarity`; the best margin over the
        threshold wins), or ``None``.  ``follow`` is True when its success
        rate > ``min_success_rate`` and its confidence ≥ ``follow_threshold``,
        or (``supervised`` then True) ≥ ``supervise_from`` (``None``: no
        supervised following)."""
        params = extract_params(goal)
        if any(UNSAFE_VALUE.search(p.example) for p in params):
            return None
        values = {p.name: p.example for p in params}
        candidates = list(self.candidates(signature_of(params)))
        best: Match | None = None
        if candidates:
            kind, rep = goal_representation(goal)
            margin = 0.0
            for stored in candidates:
                sim, threshold = goal_similarity(kind, rep, goal, stored.trace, min_similarity,
                                                 min_embedding_similarity)
                if sim >= threshold and (best is None or sim - threshold > margin):
                    best, margin = Match(stored, values, sim, False), sim - threshold
        if best is None and not any(p.kind == "quoted" for p in params):
            best = self._partial(params, represent(goal), values, min_similarity - PARTIAL_SLACK)
        if best is None:
            return None
        s = best.stored
        floor = follow_threshold if supervise_from is None else min(supervise_from, follow_threshold)
        if s.confidence < floor:
            best.why = f"confidence {s.confidence:.3f} < traces.follow_threshold {follow_threshold}" + (
                f" and < traces.supervise_from {supervise_from}" if supervise_from is not None else "")
        elif not s.success_rate > min_success_rate:
            best.why = f"success rate {s.success_rate:.3f} <= traces.min_success_rate {min_success_rate}"
        else:
            best.follow, best.supervised = True, s.confidence < follow_threshold
        return best

    def _partial(self, params: list[Param], rep: dict[str, float], values: dict[str, str],
                 min_similarity: float) -> Match | None:
        """The most similar trace whose parameters are the goal's plus quoted
        ones (``missing``), at ``tokens-v1`` similarity ≥ ``min_similarity``, or
        ``None``.  Always tokens: the goal still holds the free text a quoted
        parameter masks, which moves MiniLM's embedding far more (0.31–0.43
        for the changelog goals vs 0.66 for an unrelated goal of the same
        signature); the slot-filled goal is matched again in full."""
        wanted = signature_of(params)
        best = None
        for row in self.conn.execute("SELECT * FROM traces WHERE active=1 AND disabled=0 AND signature LIKE "
                                     "'%quoted%'"):
            try:
                stored = self.load(row)
            except TraceError:
                continue
            others = [p for p in stored.trace.params if p.kind != "quoted"]
            if signature_of(others) != wanted:
                continue
            sim = similarity(rep, represent(stored.trace.goal))
            if sim >= min_similarity and (best is None or sim > best.similarity):
                best = Match(stored, values, sim, False,
                             missing=[p for p in stored.trace.params if p.kind == "quoted"])
        return best

    # ---- writing
    def apply(self, event: dict, min_similarity: float, now: float | None = None,
              min_embedding_similarity: float = MIN_EMBEDDING_SIMILARITY) -> list[tuple[str, int]]:
        """Apply one worker's trace event; returns the ``(id, version)`` rows touched.

        ``event``: ``{"follow": {"id", "version", "ok", "saved_usd"?}}`` and/or
        ``{"learn": <Trace JSON>}``.  A follow updates the confidence (success:
        ``c + (1 − c)·0.1``; failure: ``0.7·c``) and the counts.  A learned
        trace that matches an active trace (same signature, similarity ≥
        its kind's threshold, :func:`goal_similarity`) with the same steps and answer confirms it (a
        success), unless that trace failed in this same event; with other
        steps it becomes that trace's next version (confidence 0.75, the old
        version kept inactive); with no match it is a new trace.  Runs inside
        the caller's transaction when there is one.  Raises
        :class:`TraceError` for a learned trace that does not validate.
        """
        now = time.time() if now is None else now
        touched = []
        follow = event.get("follow")
        if follow:
            self._result(follow["id"], int(follow["version"]), bool(follow["ok"]),
                         float(follow.get("saved_usd") or 0.0), now)
            touched.append((follow["id"], int(follow["version"])))
        if event.get("learn"):
            trace = validate(Trace, event["learn"], TraceError, file="learned trace")
            failed = follow["id"] if follow and not follow["ok"] else None
            touched.append(self._learn(trace, (min_similarity, min_embedding_similarity), failed, now))
        return touched

    def _result(self, trace_id: str, version: int, ok: bool, saved_usd: float, now: float) -> None:
        row = self.conn.execute("SELECT confidence FROM traces WHERE id=? AND version=?",
                                (trace_id, version)).fetchone()
        if row is None:
            logger.warning("trace {} v{} gone; replay result not recorded", trace_id, version)
            return
        c = updated_confidence(row["confidence"], ok)
        self.conn.execute("UPDATE traces SET confidence=?, runs=runs+1, successes=successes+?, "
                          "failures=failures+?, saved_usd=saved_usd+?, updated_at=? WHERE id=? AND version=?",
                          (c, int(ok), int(not ok), saved_usd if ok else 0.0, now, trace_id, version))

    def _learn(self, trace: Trace, thresholds: tuple[float, float], failed: str | None,
               now: float) -> tuple[str, int]:
        best, best_margin = None, -1.0
        for stored in self.candidates(trace.signature()):
            sim, threshold = goal_similarity(trace.representation_kind, trace.representation, trace.goal,
                                             stored.trace, *thresholds)
            if sim >= threshold and sim - threshold > best_margin:
                best, best_margin = stored, sim - threshold
        if best is not None and best.trace.content_key() == trace.content_key():
            if best.id != failed:
                self._result(best.id, best.version, True, 0.0, now)
            return best.id, best.version
        trace_id = best.id if best is not None else f"trace-{uuid.uuid4().hex[:12]}"
        version = self._next_version(trace_id)
        if best is not None:
            self.conn.execute("UPDATE traces SET active=0 WHERE id=?", (trace_id,))
        self.conn.execute(
            "INSERT INTO traces (id, version, active, disabled, signature, goal, body, confidence, runs, successes,"
            " failures, saved_usd, created_at, updated_at) VALUES (?,?,1,0,?,?,?,?,0,0,0,0,?,?)",
            (trace_id, version, trace.signature(), trace.goal, trace.model_dump_json(by_alias=True),
             NEW_CONFIDENCE, now, now))
        logger.info("trace {} v{} learned ({} steps) from goal {!r}", trace_id, version, len(trace.steps),
                    trace.goal[:80])
        return trace_id, version

    def _next_version(self, trace_id: str) -> int:
        row = self.conn.execute("SELECT MAX(version) FROM traces WHERE id=?", (trace_id,)).fetchone()
        return int(row[0] or 0) + 1

    def set_disabled(self, trace_id: str, disabled: bool = True) -> int:
        """Disable (or enable) every version of ``trace_id``; returns the rows
        changed.  Raises :class:`TraceError` when there is no such trace."""
        n = self.conn.execute("UPDATE traces SET disabled=?, updated_at=? WHERE id=?",
                              (int(disabled), time.time(), trace_id)).rowcount
        if not n:
            raise TraceError(f"trace {trace_id}", "", "a stored trace", "no such trace")
        return n


def updated_confidence(c: float, ok: bool) -> float:
    """The pattern's rule: ``c + (1 − c)·0.1`` after a success, ``0.7·c`` after a failure."""
    return c + (1.0 - c) * SUCCESS_STEP if ok else FAILURE_FACTOR * c


def apply_trace_event(conn: sqlite3.Connection, objective_id: str, event: dict) -> None:
    """Apply a ``finished`` event's ``trace`` (see :meth:`TraceStore.apply`;
    ``event["min_similarity"]`` defaults to 0.8, ``event["min_embedding_similarity"]``
    to :data:`MIN_EMBEDDING_SIMILARITY`) on ``conn`` inside the
    caller's transaction, under a savepoint: a trace that fails to apply is
    rolled back and logged with ``objective_id``, never raised (the event's
    other rows still commit)."""
    conn.execute("SAVEPOINT trace_event")
    try:
        TraceStore(conn=conn).apply(event, float(event.get("min_similarity", 0.8)), min_embedding_similarity=float(
            event.get("min_embedding_similarity", MIN_EMBEDDING_SIMILARITY)))
    except (TraceError, sqlite3.Error, KeyError, TypeError, ValueError) as exc:
        conn.execute("ROLLBACK TO trace_event")
        logger.warning("objective {}: trace event not applied: {}", objective_id, str(exc).replace("\n", "; "))
    conn.execute("RELEASE trace_event")
