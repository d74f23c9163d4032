"""Calibration audits: an answer accepted at a free tier is also asked of the
paid tier after the result is reported (never delaying it), within budgets,
and the agreement is recorded once, with the paid call in the ledger."""

from __future__ import annotations

import json
import math
import threading
import time

import redis
from rq import Queue

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.memory.audit import drain_audits
from swarmd.memory.stats import gate_stats
from swarmd.workers.context import ContextWorker
from tests.fakes import Answer, Delay
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import LABELS, SURE

OBJ = {"id": "a-1", "action": "classify", "input": "add a --dry-run flag", "labels": ",".join(LABELS)}


class Watcher(threading.Thread):
    """Notes (monotonic time) when the finished event and the audit appear in Redis,
    and how many audits were waiting when the finished event was first seen."""

    def __init__(self, redis_conn):
        super().__init__(daemon=True)
        self.redis, self.finished_at, self.audit_at, self.audits_at_finish = redis_conn, None, None, None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and self.audit_at is None:
            if self.finished_at is None and any(f[b"kind"] == b"finished" for _i, f in self.redis.xrange(Q.EVENT_STREAM)):
                self.finished_at, self.audits_at_finish = time.monotonic(), self.redis.llen(K.MEMORY_AUDITS)
            if self.finished_at is not None and self.redis.llen(K.MEMORY_AUDITS):
                self.audit_at = time.monotonic()
            time.sleep(0.005)


def test_an_audit_runs_after_the_result_is_reported_and_records_the_disagreement(swarm_factory, redis_conn,
                                                                                    redis_url):
    with FakeOllama([Answer("fix", logprobs=[SURE])]) as fast, FakeAnthropic([Delay(1.5, "feat")]) as api:
        swarm = swarm_factory(fast.url, api.url, memory={"audit_rate": 1.0})
        swarm.submit(OBJ)
        watcher = Watcher(redis.Redis.from_url(redis_url))
        watcher.start()
        ContextWorker([Q.queue(q, redis_conn) for q in Q.QUEUES], swarm.ctx,
                      connection=redis_conn).work(burst=True)
        watcher.join(timeout=10)
        watcher.stop.set()
        swarm.drain()
        assert len(api.model_requests()) == 1
    assert watcher.audits_at_finish == 0                          # the result did not wait for the audit ...
    assert watcher.audit_at - watcher.finished_at >= 1.0          # ... which took the 1.5 s delay after it
    objective = swarm.daemon.store.get("a-1")
    assert (objective["state"], objective["answer"], objective["tier"]) == ("done", "fix", "LOCAL_FAST")
    (rec,) = swarm.daemon.memory.records()
    assert (rec.source, rec.answer, rec.local_answer, rec.local_accepted, rec.verifier) == \
        ("audit", "feat", "fix", True, "claude-sonnet-5-5")
    (stats,) = gate_stats(swarm.daemon.memory)
    assert (stats.accepted, stats.wrong_accepted, stats.false_accept) == (1, 1, 1.0)
    ledger = swarm.daemon.memory.conn.execute("SELECT tier, outcome, cost_usd FROM ledger ORDER BY id").fetchall()
    assert [tuple(r)[:2] for r in ledger] == [("LOCAL_FAST", "accepted"), ("API_FALLBACK", "audit")]
    assert ledger[1][2] > 0


def test_an_audit_the_budget_cannot_cover_is_not_made(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[SURE])]) as fast, FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url, memory={"audit_rate": 1.0},
                              budgets={"daily_usd": 1e-9, "monthly_usd": None})
        swarm.run(OBJ)
        assert api.model_requests() == []
    assert swarm.daemon.store.get("a-1")["state"] == "done"
    assert swarm.daemon.memory.count() == 0


def test_at_rate_zero_nothing_is_audited(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[SURE])]) as fast, FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url, memory={"audit_rate": 0.0})
        swarm.run(OBJ)
        assert api.model_requests() == []


def test_draining_twice_writes_once_and_a_malformed_item_is_dropped(memory, redis_conn, log_lines):
    record = {"action": "classify", "labels": list(LABELS), "input": "x", "answer": "feat", "source": "audit",
              "objective_id": "d-1", "model": "small", "local_tier": "LOCAL_FAST", "local_answer": "feat",
              "local_confidence": 0.9, "local_accepted": True}
    attempt = {"tier": "API_FALLBACK", "provider": "anthropic", "model": "m", "tokens_in": 10, "tokens_out": 1,
               "cost_usd": 1e-5, "latency_ms": 5.0, "confidence": 0.9, "outcome": "audit", "error": None, "ts": 1.0}
    item = json.dumps({"record": record, "attempt": attempt, "action": "classify"})
    redis_conn.rpush(K.MEMORY_AUDITS, item, b"{not json", item)
    assert drain_audits(memory, redis_conn) == 1
    redis_conn.rpush(K.MEMORY_AUDITS, item)                      # re-delivered after a crash before the trim
    assert drain_audits(memory, redis_conn) == 0
    assert memory.count() == 1 and redis_conn.llen(K.MEMORY_AUDITS) == 0
    assert memory.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 1
    assert any("ERROR" in l and "malformed audit item" in l for l in log_lines)


def test_the_audit_draw_is_reproducible_and_has_the_configured_rate():
    from swarmd.memory.audit import drawn

    ids = [f"obj-{i}" for i in range(20000)]
    share = sum(drawn(i, 0.05) for i in ids) / len(ids)
    assert 0.045 < share < 0.055
    assert [drawn(i, 0.05) for i in ids[:50]] == [drawn(i, 0.05) for i in ids[:50]]
    assert not any(drawn(i, 0.0) for i in ids) and all(drawn(i, 1.0) for i in ids)
