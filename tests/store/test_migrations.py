"""The schema registry on real SQLite files: a ``memory.db`` written by the
swarmd before schema versioning (``schema_v0.sql``, rows inserted with plain
``sqlite3`` as that code did) opened by today's code, refused newer files,
rolled-back failures, concurrent openers, and the settings of
:func:`swarmd.store.connect` (the only place a connection is made)."""

from __future__ import annotations

import ast
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from swarmd.costs import Ledger, LedgerRow
from swarmd.governor import query_audit
from swarmd.store import SCHEMA_VERSION, SchemaTooNew, connect, open_db
from swarmd.daemon.store import Store
from swarmd.store.schema import MIGRATIONS, Migration, migrate, user_version

V0_SQL = (Path(__file__).parent / "schema_v0.sql").read_text(encoding="utf-8")

ATTEMPT = {"tier": "LOCAL_FAST", "provider": "llama_cpp", "model": "qwen", "tokens_in": 120, "tokens_out": 2,
           "cost_usd": 0.0, "latency_ms": 35.5, "confidence": 0.91, "outcome": "accepted", "error": None,
           "ts": 1_700_000_100.0}


def make_v0(path: Path) -> None:
    """A version-0 store with one finished objective (2 attempts, 2 ledger rows),
    one queued objective, a persisted event id and two audit rows."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(V0_SQL)
    con.execute("INSERT INTO objectives (id, action, input, labels, priority, max_cost_usd, tags, state, "
                "submitted_at, queued_at, started_at, finished_at, worker, answer, confidence, tier, model, "
                "cost_usd, escalations, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                ("o1", "classify", "fix: crash on start", json.dumps(["fix", "feat"]), "normal", 0.5,
                 json.dumps({"repo": "x"}), "done", 1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0,
                 1_700_000_200.0, "w1", "fix", 0.91, "API_FALLBACK", "claude", 0.0123, 1, None))
    con.execute("INSERT INTO objectives (id, action, input, labels, priority, max_cost_usd, tags, state, "
                "submitted_at, queued_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                ("o2", "reason", "why?", None, "high", None, "{}", "queued", 1_700_000_300.0, 1_700_000_301.0))
    for n, (tier, cost, outcome) in enumerate([("LOCAL_FAST", 0.0, "escalated"),
                                              ("API_FALLBACK", 0.0123, "accepted")]):
        attempt = {**ATTEMPT, "tier": tier, "cost_usd": cost, "outcome": outcome, "ts": 1_700_000_100.0 + n}
        con.execute("INSERT INTO attempts VALUES (?,?,?)", ("o1", n, json.dumps(attempt)))
        con.execute("INSERT INTO ledger (ts, objective_id, action, tier, provider, model, tokens_in, tokens_out, "
                    "cost_usd, latency_ms, confidence, outcome, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (attempt["ts"], "o1", "classify", tier, "p", "m", 120, 2, cost, 35.5, 0.91, outcome, None))
    con.execute("INSERT INTO events_seen VALUES ('ev-1')")
    for i, decision in enumerate(["allow", "deny"]):
        con.execute("INSERT INTO audit_log (ts, objective_id, tool, args, decision, rule, reason) "
                    "VALUES (?,?,?,?,?,?,?)", (f"2023-11-14T22:13:2{i}.000000+00:00", "o1", "shell",
                                               json.dumps({"command": "ls"}), decision, f"rule-{i}", "why"))
    con.commit()
    con.close()


def shape(path: Path) -> dict:
    """Every table's columns and every index's columns, from a plain connection."""
    con = sqlite3.connect(path)
    try:
        out = {}
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
            out[name] = [tuple(r[1:]) for r in con.execute(f"PRAGMA table_info({name})")]
            for idx in con.execute(f"PRAGMA index_list({name})").fetchall():
                out[f"{name}.{idx[1]}"] = [r[2] for r in con.execute(f"PRAGMA index_info({idx[1]})")]
        return out
    finally:
        con.close()


def test_a_version_0_store_is_migrated_with_its_data_intact(tmp_path):
    old = tmp_path / "memory.db"
    make_v0(old)
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone() == (0,)

    store = Store(old)
    try:
        record = store.get("o1")
        assert (record["state"], record["answer"], record["tier"], record["cost_usd"]) == \
            ("done", "fix", "API_FALLBACK", 0.0123)
        assert record["labels"] == ["fix", "feat"] and record["tags"] == {"repo": "x"}
        assert [a["outcome"] for a in record["attempts"]] == ["escalated", "accepted"]
        assert store.counts()["done"] == 1 and store.counts()["queued"] == 1
        assert store.unfinished_ids() == ["o2"]
        total, by_tier = store.spend_since(0)
        assert total == pytest.approx(0.0123) and by_tier["LOCAL_FAST"]["calls"] == 1
        # the event already persisted before the upgrade is still recognised
        assert store.apply_event("ev-1", "failed", "o2", {"reason": "x"}) is False
        assert store.get("o2")["state"] == "queued"
        # new writes work on the migrated file, numbering continues after the old rows
        assert store.apply_event("ev-2", "finished", "o2", {
            "state": "done", "result": {"answer": "because"}, "action": "reason",
            "attempts": [{**ATTEMPT, "ts": 1_700_000_400.0}],
            "audit": [{"ts": "2023-11-14T22:20:00.000000+00:00", "objective_id": "o2", "tool": "shell",
                       "args": "{}", "decision": "ask", "rule": "r", "reason": "y"}]}) is True
    finally:
        store.close()

    con = sqlite3.connect(old)
    assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert con.execute("SELECT id, objective_id FROM ledger ORDER BY id").fetchall() == [(1, "o1"), (2, "o1"), (3, "o2")]
    assert con.execute("SELECT n FROM attempts WHERE objective_id='o2'").fetchall() == [(0,)]
    con.close()
    assert [(r.id, r.decision) for r in query_audit(old)] == [(3, "ask"), (2, "deny"), (1, "allow")]

    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    assert shape(old) == shape(fresh)              # migrating and creating give the same schema
    assert "objectives.objectives_finished" in shape(old)


def test_a_ledger_only_file_gets_the_other_tables(tmp_path):
    """``swarmctl ask`` before the daemon ever ran: a version-0 file with only the ledger."""
    path = tmp_path / "memory.db"
    con = sqlite3.connect(path)
    con.executescript(V0_SQL.split("CREATE TABLE IF NOT EXISTS objectives")[0])
    con.execute("INSERT INTO ledger (ts, action, tier, provider, model, tokens_in, tokens_out, cost_usd, "
                "latency_ms, outcome) VALUES (1, 'ask', 'T', 'p', 'm', 1, 1, 0.5, 1, 'accepted')")
    con.commit()
    con.close()
    ledger = Ledger(path)
    ledger.record(LedgerRow("ask", "T", "p", "m", 1, 1, 0.25, 1.0, None, "accepted", ts=2.0))
    assert [r["cost_usd"] for r in ledger.rows()] == [0.5, 0.25]
    ledger.close()
    store = Store(path)
    assert store.counts()["queued"] == 0 and store.spend_since(0)[0] == pytest.approx(0.75)
    store.close()
    assert shape(path) == shape(_fresh(tmp_path))


def _fresh(tmp_path: Path) -> Path:
    p = tmp_path / "fresh.db"
    open_db(p).close()
    return p


def test_a_file_from_a_newer_swarmd_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "memory.db"
    open_db(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNew, match=rf"memory.db: schema version {SCHEMA_VERSION + 1} is newer"):
        Store(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)


def test_a_failing_migration_is_rolled_back_and_earlier_ones_kept(tmp_path):
    conn = connect(tmp_path / "x.db")
    steps = (Migration(1, "t", "ok", "CREATE TABLE a (x INTEGER);"),
             Migration(2, "t", "fails halfway", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);"))
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrate(conn, steps)
    assert user_version(conn) == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"a"}
    # fixed, the same file goes on from version 1; a second run applies nothing
    fixed = (steps[0], Migration(2, "t", "fixed", "CREATE TABLE b (x INTEGER); INSERT INTO b VALUES (1);"))
    assert migrate(conn, fixed) == 1 and migrate(conn, fixed) == 0
    assert user_version(conn) == 2 and [tuple(r) for r in conn.execute("SELECT x FROM b")] == [(1,)]


def test_the_registry_is_numbered_in_order_and_names_owners():
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    assert {m.component for m in MIGRATIONS} >= {"costs.ledger", "store.objectives", "governor.audit"}


def test_connect_settings(tmp_path):
    path = tmp_path / "sub" / "x.db"                    # parent directories are created
    conn = connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE c (p INTEGER REFERENCES p(id))")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO c VALUES (7)")
    ro = connect(path, readonly=True)
    assert ro.execute("SELECT count(*) FROM p").fetchone()[0] == 0
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.execute("INSERT INTO p VALUES (1)")
    with pytest.raises(sqlite3.OperationalError):
        connect(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_two_processes_opening_an_old_file_at_once_migrate_it_once(tmp_path):
    """Daemon and ``swarmctl`` starting together: each migration runs on one connection only."""
    path = tmp_path / "memory.db"
    make_v0(path)
    conns = [connect(path) for _ in range(4)]
    barrier = threading.Barrier(len(conns))
    applied, errors = [], []

    def run(conn):
        barrier.wait()
        try:
            applied.append(migrate(conn, where=str(path)))
        except Exception as exc:        # reported below with the test's assert
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sum(applied) == SCHEMA_VERSION
    assert all(user_version(c) == SCHEMA_VERSION for c in conns)
    for c in conns:
        c.close()


def test_no_sqlite_connection_outside_store_db():
    """Every SQLite connection in ``src/swarmd`` is made by :func:`swarmd.store.connect`."""
    src = Path(__file__).resolve().parents[2] / "src" / "swarmd"
    found = []
    for py in src.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr == "connect" and isinstance(node.value, ast.Name)
                    and node.value.id == "sqlite3"):
                found.append(f"{py.relative_to(src)}:{node.lineno}")
    assert found and all(f.startswith("store/db.py:") for f in found), found
