"""A final state is never overwritten by a later event.

A worker that reports an objective ``done`` and dies before RQ records its
job as finished leaves a job RQ counts as abandoned; with its retries spent,
RQ moves it to the failed-job registry, and the daemon's sweep reports it
``failed``.  The objective stays ``done`` in the store and in its Redis hash
(:func:`swarmd.constants.objective_key`), and the daemon logs the ``failed``
event as ignored.

End to end: ``swarmd --workers 1`` (echo provider, ``retry_max: 0``) whose
worker SIGKILLs itself right after its ``finished`` event (failpoint
``worker_after_report``).  In process: :meth:`swarmd.daemon.service.Daemon.apply_events`
and :class:`swarmd.daemon.store.Store` with late ``failed``, ``started``
and ``finished`` events.  Real redis-server throughout.
"""

from __future__ import annotations

import json

import pytest
from rq.job import Job

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.config import load_config
from swarmd.daemon.service import Daemon
from swarmd.objectives import Objective
from tests.daemon.helpers import redis_state, wait_final
from tests.faults.helpers import Swarmd, echo_config, finished_counts, rows
from tests.wait import LONG_S, wait_until

ATTEMPT = {"tier": "LOCAL_FAST", "provider": "echo", "model": "echo", "tokens_in": 3, "tokens_out": 1,
           "cost_usd": 0.0, "latency_ms": 1.0, "confidence": 0.9, "outcome": "accepted", "error": None, "ts": 5.0}
DONE = {"state": "done", "action": "classify", "result": {"answer": "feat", "tier": "LOCAL_FAST"},
        "attempts": [ATTEMPT], "ts": 5.0}



def test_job_failed_after_its_worker_reported_done_leaves_the_objective_done(tmp_path, redis_url, redis_conn):
    mark = tmp_path / "killed"
    config = echo_config(tmp_path, retries=("retry_max: 2 ", "retry_max: 0 "))
    daemon = Swarmd(tmp_path, config, workers=1, redis_url=redis_url,
                    SWARMD_FAILPOINT="worker_after_report", SWARMD_FAILPOINT_MARK=str(mark))
    [row] = rows("late", 1)
    oid = row["id"]
    try:
        daemon.start()
        daemon.submit([row])
        record = wait_final(daemon.data / "memory.db", [oid])[oid]
        assert record["state"] == "done"
        assert mark.read_text() == oid                 # the worker died after reporting

        def swept() -> bool:      # RQ failed the abandoned job and the daemon's sweep took it from the registry
            job = Job.fetch(oid, connection=redis_conn, serializer=Q.JOB_SERIALIZER)
            failed = [Q.queue(name, redis_conn).failed_job_registry for name in Q.QUEUES]
            return job.get_status() == "failed" and not any(oid in r.get_job_ids() for r in failed)
        wait_until(swept, LONG_S, lambda: f"the failed job to be swept; log: {daemon.log[-1500:]}", interval=0.2)
        wait_until(lambda: "ignored" in daemon.log, LONG_S, lambda: f"the ignored event logged: {daemon.log[-1500:]}")
        record = wait_final(daemon.data / "memory.db", [oid])[oid]
    finally:
        daemon.close()
    assert (record["state"], record["answer"]) == ("done", "feat")
    mirror = redis_state(redis_conn, oid)
    assert mirror["state"] == "done" and json.loads(mirror["result"])["answer"] == "feat"
    assert f"objective {oid} stays done: its failed event (failed) ignored" in daemon.log
    assert finished_counts(redis_conn) == {oid: 1}


@pytest.fixture
def daemon(tmp_path, redis_conn):
    d = Daemon(load_config(echo_config(tmp_path)), tmp_path / "data", redis_conn)
    d.store.add_queued(Objective(id="k1", action="classify", input="x", labels=["feat", "fix"], submitted_at=1.0))
    yield d
    d.store.close()


def test_late_failed_and_started_events_leave_done_in_store_and_mirror(daemon, redis_conn, log_lines):
    daemon.apply_events([("1-0", "finished", "k1", DONE)])
    assert redis_state(redis_conn, "k1")["state"] == "done"
    daemon.apply_events([("failed:k1", "failed", "k1", {"reason": "AbandonedJobError", "ts": 9.0}),
                         ("2-0", "started", "k1", {"worker": "w2", "ts": 9.5})])
    record = daemon.store.get("k1")
    assert (record["state"], record["finished_at"], record["reason"]) == ("done", 5.0, None)
    mirror = redis_state(redis_conn, "k1")
    assert mirror["state"] == "done" and json.loads(mirror["result"])["answer"] == "feat"
    assert redis_conn.ttl(K.objective_key("k1")) > 0           # still expires as a final state does
    [line] = [line for line in log_lines if "ignored" in line]
    assert "objective k1 stays done: its failed event (failed) ignored" in line
    assert "objective k1 stays done: its started event (running) ignored" in line


def test_a_final_mirror_is_kept_even_when_the_store_takes_the_event(daemon, redis_conn, log_lines):
    """The Redis write checks the hash itself: a state final there is not overwritten by any writer."""
    redis_conn.hset(K.objective_key("k1"), mapping={"state": "unresolved", "result": "{}"})
    daemon.apply_events([("3-0", "started", "k1", {"worker": "w", "ts": 2.0})])
    assert daemon.store.get("k1")["state"] == "running"
    assert redis_state(redis_conn, "k1") == {"state": "unresolved", "result": "{}"}
    assert any("objective k1 stays unresolved in Redis: its started event (running) ignored there" in line
               for line in log_lines)


def test_a_late_finished_keeps_the_first_final_state_and_still_records_its_cost(daemon, redis_conn):
    daemon.apply_events([("failed:k1", "failed", "k1", {"reason": "job failed", "ts": 4.0}),
                         ("4-0", "finished", "k1", DONE)])
    record = daemon.store.get("k1")
    assert (record["state"], record["reason"], record["answer"]) == ("failed", "job failed", None)
    assert len(record["attempts"]) == 1                         # the call was paid for: in the ledger
    assert daemon.store.spend_since(0)[1] == {"LOCAL_FAST": {"calls": 1, "cost_usd": 0.0}}
    assert redis_state(redis_conn, "k1")["state"] == "failed"
    assert daemon.store.persist_events([("4-0", "finished", "k1", DONE)]) == [(False, None)]   # seen: nothing kept
