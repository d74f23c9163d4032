"""The schema registry: every table swarmd keeps in SQLite, as numbered migrations.

A swarmd database records in ``PRAGMA user_version`` the last migration applied (0: new, or
from before versioning).  :func:`open_db` connects (:func:`swarmd.store.db.connect`) and
applies every later migration in order, each in its own ``BEGIN IMMEDIATE`` transaction with
the new ``user_version``: two processes migrate a file once, and a failed migration leaves
it as it was.  Each :class:`Migration` names the component that owns its tables (columns
documented there).  A migration, once released, never changes; new ones append the next
number.  A file above :data:`SCHEMA_VERSION` is refused (:class:`SchemaTooNew`).  The list
of migrations, and how version-0 files are handled: docs/design.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from swarmd.errors import BadInput
from swarmd.store.db import connect, transaction


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...: its position), the owning
    ``component`` (module under ``swarmd``), what it does, and its SQL (one or
    more statements; no ``BEGIN``/``COMMIT``: :func:`migrate` owns the
    transaction)."""

    version: int
    component: str
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "costs.ledger", "cost ledger: one row per model call", """
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
    """),
    Migration(2, "store.objectives", "objectives, their attempts, worker events already persisted", """
        CREATE TABLE IF NOT EXISTS objectives (
            id TEXT PRIMARY KEY,
            action TEXT NOT NULL,
            input TEXT NOT NULL,
            labels TEXT,
            priority TEXT NOT NULL,
            max_cost_usd REAL,
            tags TEXT NOT NULL,
            state TEXT NOT NULL,
            submitted_at REAL NOT NULL,
            queued_at REAL,
            started_at REAL,
            finished_at REAL,
            worker TEXT,
            answer TEXT,
            confidence REAL,
            tier TEXT,
            model TEXT,
            cost_usd REAL,
            escalations INTEGER,
            reason TEXT
        );
        CREATE INDEX IF NOT EXISTS objectives_state ON objectives(state);
        CREATE TABLE IF NOT EXISTS attempts (
            objective_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (objective_id, n)
        );
        CREATE TABLE IF NOT EXISTS events_seen (event_id TEXT PRIMARY KEY);
    """),
    Migration(3, "governor.audit", "audit log: every governor decision", """
        CREATE TABLE IF NOT EXISTS audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            objective_id TEXT,
            tool TEXT NOT NULL,
            args TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'ask')),
            rule TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS audit_log_objective ON audit_log (objective_id, decision);
    """),
    Migration(4, "store.objectives", "index objectives by finish time (reports' time windows)", """
        CREATE INDEX IF NOT EXISTS objectives_finished ON objectives(finished_at);
    """),
    Migration(5, "memory.records", "learning memory: verified outcomes", """
        CREATE TABLE IF NOT EXISTS verified_outcomes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            action TEXT NOT NULL,
            labels TEXT NOT NULL,            -- JSON list, as asked
            label_key TEXT NOT NULL,         -- the label set, sorted and comma-joined
            input TEXT NOT NULL,
            input_norm TEXT NOT NULL,        -- normalise_input(input)
            template TEXT NOT NULL,          -- template_of(input)
            answer TEXT,                     -- NULL: a human judged the answer wrong without giving the right one
            source TEXT NOT NULL,
            verifier TEXT,                   -- teacher model, "human" or the auditing model
            objective_id TEXT,
            model TEXT,                      -- local model whose answer is judged (or NULL)
            local_tier TEXT,
            local_answer TEXT,
            local_confidence REAL,
            local_accepted INTEGER,          -- 1 when the gate accepted the local answer
            local_scores TEXT,               -- JSON {label: ln p(label)} or NULL
            rejected TEXT NOT NULL DEFAULT '[]',   -- JSON list of the attempts not accepted
            note TEXT,
            created_at REAL NOT NULL,
            verified_at REAL NOT NULL,
            value REAL NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX IF NOT EXISTS verified_objective_source ON verified_outcomes(objective_id, source);
        CREATE INDEX IF NOT EXISTS verified_lookup ON verified_outcomes(action, label_key, input_norm);
        CREATE INDEX IF NOT EXISTS verified_template ON verified_outcomes(action, label_key, template);
    """),
    Migration(6, "memory.records", "learning memory: answer-cache templates verified wrong", """
        CREATE TABLE cache_disabled (
            action TEXT NOT NULL,
            label_key TEXT NOT NULL,
            template TEXT NOT NULL,
            answer TEXT,                     -- the answer it served
            record_id INTEGER,               -- the verified_outcomes row that proved it wrong
            disabled_at REAL NOT NULL,
            PRIMARY KEY (action, label_key, template)
        );
    """),
    Migration(7, "memory.gate", "learning memory: learned quality-gate calibrations, every version", """
        CREATE TABLE gate_calibrations (
            version INTEGER PRIMARY KEY AUTOINCREMENT,
            action TEXT NOT NULL,
            label_key TEXT NOT NULL,
            model TEXT NOT NULL,
            calibration TEXT,                -- JSON of swarmd.config.LabelCalibration, NULL: threshold only
            threshold REAL NOT NULL,         -- > 1: accept nothing
            trained_on INTEGER NOT NULL,
            held_out INTEGER NOT NULL,
            utility_new REAL NOT NULL,       -- held-out utility of this candidate ...
            utility_old REAL NOT NULL,       -- ... and of the gate in use when it was fitted
            held_out_false_accept REAL,
            held_out_coverage REAL NOT NULL,
            active INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            note TEXT NOT NULL
        );
        CREATE INDEX gate_calibrations_active ON gate_calibrations(action, label_key, model, active);
    """),
    Migration(8, "memory.traces", "execution traces (learner-follower), every version", """
        CREATE TABLE traces (
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,   -- 1: the version matched and followed
            disabled INTEGER NOT NULL DEFAULT 0, -- swarmctl traces disable
            signature TEXT NOT NULL,             -- parameter names and path suffixes (compatibility)
            goal TEXT NOT NULL,
            body TEXT NOT NULL,                  -- JSON of swarmd.agent.traces.Trace
            confidence REAL NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0,     -- replays and learner confirmations
            successes INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            saved_usd REAL NOT NULL DEFAULT 0,   -- learner cost not spent by successful replays
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (id, version)
        );
        CREATE INDEX traces_signature ON traces(signature, active, disabled);
    """),
    Migration(9, "store.objectives", "objectives: the routing strategy each ran with", """
        -- NULL: queued before routing strategies existed (it ran cascade)
        ALTER TABLE objectives ADD COLUMN strategy TEXT;
    """),
    Migration(10, "costs.ledger", "ledger rows of agent objectives marked learner or follower", """
        ALTER TABLE ledger ADD COLUMN mode TEXT;     -- learner | follower | NULL (not an agent run)
    """),
    Migration(11, "memory.retrieval", "learning memory: BM25 full-text index of verified inputs (FTS5)", """
        -- external-content FTS5 table over verified_outcomes.input, kept in step by triggers;
        -- porter stemming over unicode61 tokens ("fixes" matches "fix")
        CREATE VIRTUAL TABLE verified_fts USING fts5(
            input, content='verified_outcomes', content_rowid='id', tokenize='porter unicode61');
        INSERT INTO verified_fts(verified_fts) VALUES ('rebuild');
        CREATE TRIGGER verified_fts_insert AFTER INSERT ON verified_outcomes BEGIN
            INSERT INTO verified_fts(rowid, input) VALUES (new.id, new.input);
        END;
        CREATE TRIGGER verified_fts_delete AFTER DELETE ON verified_outcomes BEGIN
            INSERT INTO verified_fts(verified_fts, rowid, input) VALUES ('delete', old.id, old.input);
        END;
        CREATE TRIGGER verified_fts_update AFTER UPDATE OF input ON verified_outcomes BEGIN
            INSERT INTO verified_fts(verified_fts, rowid, input) VALUES ('delete', old.id, old.input);
            INSERT INTO verified_fts(rowid, input) VALUES (new.id, new.input);
        END;
    """),
    Migration(12, "memory.records", "learning memory: the prompt form of judged answers and of learned gates", """
        -- fixed | retrieved (swarmd.router.providers.base.Prompt.form); NULL: recorded before
        -- prompt forms were (every such answer was asked in the fixed form)
        ALTER TABLE verified_outcomes ADD COLUMN local_prompt TEXT;
        ALTER TABLE gate_calibrations ADD COLUMN prompt TEXT NOT NULL DEFAULT 'fixed';
        DROP INDEX gate_calibrations_active;
        CREATE INDEX gate_calibrations_active ON gate_calibrations(action, label_key, model, prompt, active);
    """),
    Migration(13, "memory.retrieval", "learning memory: the FTS5 index of verified inputs dropped", """
        -- BM25 is ranked by swarmd.memory.bm25 (bm25s, an index in memory per action and label set):
        -- FTS5's bm25() ranking cost 90 ms p99 of CPU over 100,000 records (bench/retrieval.py)
        DROP TRIGGER IF EXISTS verified_fts_insert;
        DROP TRIGGER IF EXISTS verified_fts_delete;
        DROP TRIGGER IF EXISTS verified_fts_update;
        DROP TABLE IF EXISTS verified_fts;
    """),
    Migration(14, "store.objectives", "objectives: retry_of, and indexes for lists by state and time", """
        -- the objective this one runs again (swarmctl retry); NULL: not a retry
        ALTER TABLE objectives ADD COLUMN retry_of TEXT;
        CREATE INDEX objectives_retry_of ON objectives(retry_of);
        -- swarmctl list / GET /api/v1/objectives: newest first, optionally of one state
        CREATE INDEX objectives_submitted ON objectives(submitted_at, id);
        CREATE INDEX objectives_state_submitted ON objectives(state, submitted_at, id);
    """),
    Migration(15, "daemon.store", "objectives: the models the router skipped, and why", """
        -- JSON list of swarmd.router.router.skip_record dicts (tier, model, provider, reason_kind,
        -- detail, until | cap); NULL: none skipped, or finished before skips were recorded
        ALTER TABLE objectives ADD COLUMN skipped TEXT;
    """),
)

#: The ``user_version`` of a database migrated by this code.
SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(BadInput):
    """The database was migrated by a newer swarmd (its ``user_version`` is
    above :data:`SCHEMA_VERSION`); the message names the file and both versions."""


def _check_registry(migrations: tuple[Migration, ...]) -> None:
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise AssertionError(f"swarmd.store.schema: migrations must be numbered 1..n in order, found {numbers}")


_check_registry(MIGRATIONS)


def _statements(sql: str) -> list[str]:
    """``sql`` split into complete statements (``executescript`` would commit
    the open transaction, so statements run one by one)."""
    out, buf = [], ""
    for part in sql.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:80]!r}")
    return out


def user_version(conn: sqlite3.Connection) -> int:
    """``PRAGMA user_version`` of the database on ``conn``."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS, where: str = "") -> int:
    """Apply to ``conn`` (autocommit, as from :func:`~swarmd.store.db.connect`)
    every migration above its ``user_version``, each with its new version in
    one transaction; returns how many were applied.  ``where`` names the file
    in errors.  Raises :class:`SchemaTooNew`, or ``sqlite3.Error`` from a
    failing migration (that migration is rolled back; earlier ones stay)."""
    latest = migrations[-1].version if migrations else 0
    applied = 0
    for m in migrations:
        if m.version <= user_version(conn):       # cheap check without the write lock
            continue
        with transaction(conn):
            found = user_version(conn)           # another process may have migrated meanwhile
            if m.version == found + 1:
                for statement in _statements(m.sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(m.version)}")
                applied += 1
    found = user_version(conn)
    if found > latest:
        raise SchemaTooNew(f"{where or 'database'}: schema version {found} is newer than this swarmd's "
                           f"({latest}); upgrade swarmd or use another data directory")
    return applied


def open_db(path: str | Path) -> sqlite3.Connection:
    """:func:`~swarmd.store.db.connect` to ``path`` (created if missing) and
    :func:`migrate` it to :data:`SCHEMA_VERSION`.  Raises :class:`SchemaTooNew`
    or ``sqlite3.Error``."""
    conn = connect(path)
    try:
        migrate(conn, where=str(path))
    except BaseException:
        conn.close()
        raise
    return conn
