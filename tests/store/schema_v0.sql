-- memory.db as created before schema versioning (user_version 0): the DDL that
-- swarmd.memory.store.Store ran on open up to commit af304ba (router.ledger.SCHEMA +
-- the store's tables + governor.audit.SCHEMA), copied verbatim. Never edit: it is
-- the 'previous version' tests/store/test_migrations.py migrates from.
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
