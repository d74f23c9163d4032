"""Parking, resolving and auditing on a real redis-server and a real SQLite store:
the park record, the one-winner resolve transaction (job re-enqueued as
``<id>__r<n>``, ``resolved`` event with its audit row), timeouts, and the
store writing audit rows that arrive in events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.agent import approvals
from swarmd.config import load_config
from swarmd.governor import AuditBuffer, Decision, query_audit
from swarmd.objectives import Objective
from swarmd.daemon.store import Store

REPO = Path(__file__).resolve().parents[2]
OBJ = {"id": "p1", "action": "agent", "input": "x", "labels": None, "priority": "high", "max_cost_usd": None,
       "tags": [], "submitted_at": 1.0}
ASK = Decision("ask", "git-write", "git push: talks to remotes")


@pytest.fixture
def config():
    return load_config(REPO / "src" / "swarmd" / "llm_config.yaml")


def _park(conn, now=100.0, obj=OBJ):
    pipe = conn.pipeline()
    approvals.park(pipe, obj, 0, "shell", {"command": "git push"}, ASK, {"steps": 1}, now=now)
    pipe.execute()


def _events(conn):
    return [(f[b"kind"].decode(), f[b"id"].decode(), json.loads(f[b"payload"]))
            for _id, f in conn.xrange(Q.EVENT_STREAM)]


def test_park_list_and_approve_requeues_once(redis_conn, config):
    _park(redis_conn)
    listed = approvals.list_parked(redis_conn)
    assert [(r["id"], r["tool"], r["rule"], r["run"]) for r in listed] == [("p1", "shell", "git-write", 0)]
    assert approvals.age_s(listed[0], now=160.0) == 60.0

    rec = approvals.resolve(redis_conn, "p1", "approve", "alice", config, now=200.0)
    assert rec["job_id"] == "p1__r1" and rec["resolution"]["rule"] == "approval.approved"
    job = Job.fetch("p1__r1", connection=redis_conn, serializer=Q.JOB_SERIALIZER)
    assert job.args[0]["id"] == "p1" and job.timeout == config.daemon.job_timeout_s
    # back to a worker of the machine that parked it (where the workspace is), not to "high"
    assert Queue(Q.resume_queue(Q.site()), connection=redis_conn).job_ids == ["p1__r1"]
    assert Q.queue("high", redis_conn).job_ids == []
    assert redis_conn.hget(K.objective_key("p1"), "state") == b"queued"
    assert approvals.list_parked(redis_conn) == []
    assert approvals.load(redis_conn, "p1")["resolution"]["by"] == "alice"
    [(kind, oid, payload)] = _events(redis_conn)
    assert (kind, oid, payload["resolution"]) == ("resolved", "p1", "approve")
    assert payload["audit"][0]["decision"] == "allow" and "approved by alice" in payload["audit"][0]["reason"]

    with pytest.raises(approvals.NotParked):
        approvals.resolve(redis_conn, "p1", "reject", "bob", config)       # one resolver wins
    with pytest.raises(approvals.NotParked):
        approvals.resolve(redis_conn, "nope", "approve", "bob", config)
    with pytest.raises(ValueError):
        approvals.resolve(redis_conn, "p1", "maybe", "bob", config)


def test_resolving_does_not_move_a_final_state_mirror_back_to_queued(redis_conn, config):
    # the mirror's one rule (objectives.mirror_state): whatever writes it, a final state stands
    _park(redis_conn)
    redis_conn.hset(K.objective_key("p1"), mapping={"state": "failed", "reason": "worker lost"})
    approvals.resolve(redis_conn, "p1", "approve", "alice", config, now=200.0)
    assert redis_conn.hgetall(K.objective_key("p1")) == {b"state": b"failed", b"reason": b"worker lost"}


def test_expired_lists_only_old_parks(redis_conn, config):
    _park(redis_conn, now=100.0)
    _park(redis_conn, now=150.0, obj={**OBJ, "id": "p2"})
    assert approvals.expired(redis_conn, 30, now=140.0) == ["p1"]
    rec = approvals.resolve(redis_conn, "p1", "timeout", "swarmd", config, now=140.0)
    assert rec["resolution"]["rule"] == "approval.timeout"
    assert approvals.resolution_decision(rec).decision == "deny"
    assert approvals.expired(redis_conn, 30, now=140.0) == []


def test_clear_forgets_the_park(redis_conn):
    _park(redis_conn)
    pipe = redis_conn.pipeline()
    approvals.clear(pipe, "p1")
    pipe.execute()
    assert approvals.load(redis_conn, "p1") is None and approvals.list_parked(redis_conn) == []


def test_store_persists_audit_rows_and_parked_state(tmp_path):
    store = Store(tmp_path / "memory.db")
    store.add_queued(Objective(**OBJ))
    buf = AuditBuffer()
    buf.record("p1", "shell", {"command": "curl -H 'Authorization: Bearer sk-ant-abcdefghijklmnop' x"}, ASK)
    rows = buf.drain()
    assert buf.drain() == []
    store.apply_events([
        ("e1", "started", "p1", {"worker": "w", "ts": 1.0}),
        ("e2", "finished", "p1", {"state": "awaiting_approval", "result": {"reason": "ask: git-write"},
                                  "attempts": [], "audit": rows}),
    ])
    rec = store.get("p1")
    assert rec["state"] == "awaiting_approval" and rec["finished_at"] is None
    assert "p1" in store.unfinished_ids()
    row = {**rows[0], "decision": "allow", "rule": "approval.approved", "reason": "approved by alice"}
    store.apply_events([("e3", "resolved", "p1", {"resolution": "approve", "by": "alice", "audit": [row]}),
                        ("e3", "resolved", "p1", {"resolution": "approve", "by": "alice", "audit": [row]})])
    assert store.get("p1")["state"] == "queued"
    store.close()
    audit = query_audit(tmp_path / "memory.db", objective_id="p1")
    assert [r.rule for r in audit] == ["approval.approved", "git-write"]      # e3 applied once
    assert "sk-ant-abcdefghijklmnop" not in json.dumps(audit[1].args)      # redacted in the worker


def test_resumed_run_goes_to_the_parking_site_and_workers_listen_on_their_own(redis_conn, config, monkeypatch):
    monkeypatch.setenv("SWARMD_SITE", "host-a")
    _park(redis_conn, obj={**OBJ, "id": "p9"})
    assert approvals.load(redis_conn, "p9")["site"] == "host-a"
    monkeypatch.setenv("SWARMD_SITE", "host-b")                         # resolved from another machine
    approvals.resolve(redis_conn, "p9", "approve", "alice", config)
    assert Q.queue("resume:host-a", redis_conn).job_ids == ["p9__r1"]
    assert Q.worker_queues() == ["resume:host-b", "high", "default", "low"]   # host-b's workers skip it
    # status and metrics show the waiting resumed run; empty resume queues are left out
    assert Q.queue_depths(redis_conn) == {"high": 0, "default": 0, "low": 0, "resume:host-a": 1}


def test_records_parked_before_sites_existed_resume_on_the_priority_queue(redis_conn, config):
    _park(redis_conn, obj={**OBJ, "id": "p8"})
    record = approvals.load(redis_conn, "p8")
    del record["site"]
    redis_conn.set(K.park_key("p8"), json.dumps(record))
    approvals.resolve(redis_conn, "p8", "reject", "bob", config)
    assert Q.queue("high", redis_conn).job_ids == ["p8__r1"]
