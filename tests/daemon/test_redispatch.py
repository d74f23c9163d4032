"""An id that already finished is not dispatched again, even when its RQ job
has expired and its finished event was never read by a daemon (the daemon was
down): worker events are persisted before objectives are admitted, at start-up
and within each read. Real Redis, in-process daemon and RQ SimpleWorker."""

from __future__ import annotations

import json

from rq.job import Job

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.config import load_config
from swarmd.objectives import validate
from swarmd.workers.context import ContextWorker, build_context
from tests.daemon.helpers import write_config


def _submit(redis_conn, config, oid: str) -> None:
    obj = validate({"id": oid, "action": "classify", "input": "fix crash", "labels": "feat,fix"}, config)
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(obj.to_dict())})


def test_finished_id_resubmitted_while_daemon_was_down_is_not_run_twice(tmp_path, redis_conn):
    from swarmd.daemon.service import Daemon

    config = load_config(write_config(tmp_path, fast_provider="echo"))
    first = Daemon(config, tmp_path / "data", redis_conn)
    _submit(redis_conn, config, "dup-1")
    first.handle(first.read_streams(block_ms=100))                      # admitted and enqueued
    queue = Q.queue(Q.PRIORITY_QUEUE["normal"], redis_conn)
    assert queue.count == 1
    first.store.close()                                                  # the daemon goes down

    ctx = build_context(config, redis_conn, tmp_path / "data", "w1")
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)   # the job runs; its events wait unread
    assert redis_conn.xlen(Q.EVENT_STREAM) >= 1
    Job.fetch("dup-1", connection=redis_conn, serializer=Q.JOB_SERIALIZER).delete()   # its result expired
    _submit(redis_conn, config, "dup-1")                                 # the same id again

    second = Daemon(config, tmp_path / "data", redis_conn)
    second.reclaim()                                                     # start-up: new events persisted first
    second.handle(second.read_streams(block_ms=100))
    assert second.store.get("dup-1")["state"] == "done"
    assert queue.count == 0 and not Job.exists("dup-1", connection=redis_conn)   # not enqueued again
    finished = [f for _i, f in redis_conn.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]
    assert len(finished) == 1
    second.store.close()
