"""The worker context is built once per worker and handed to every job.

Real Redis, real RQ worker (:class:`swarmd.workers.context.ContextWorker`,
in this process, burst mode), the echo provider for the model."""

from __future__ import annotations

import json
import threading
import time

from rq import get_current_job
from rq.registry import StartedJobRegistry

from swarmd import queue as Q
from swarmd.config import load_config
from swarmd.router import Router
from swarmd.router.providers import make_provider
from swarmd.workers import context as worker_context
from swarmd.workers.context import ContextWorker, WorkerContext, build_context
from swarmd.queue import JOB_FUNC
from tests.daemon.helpers import write_config


def router_identity(ctx: WorkerContext, tag: str) -> list:
    """A job (run by the worker below): which context and router it was given."""
    return [tag, id(ctx), id(ctx.router)]


def test_two_jobs_receive_the_same_context_built_once(tmp_path, redis_conn):
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    ctx = build_context(config, redis_conn, tmp_path / "data", "w-ctx")
    queue = Q.queue("default", redis_conn)
    jobs = [queue.enqueue(f"{__name__}.router_identity", tag) for tag in ("a", "b")]
    ContextWorker([queue], ctx, job_funcs={f"{__name__}.router_identity"}, connection=redis_conn).work(burst=True)
    assert [j.return_value() for j in jobs] == [["a", id(ctx), id(ctx.router)], ["b", id(ctx), id(ctx.router)]]


def test_objectives_reuse_the_model_loaded_at_start_up(tmp_path, redis_conn):
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    built = []

    def counting_factory(model, cooldown_s):
        built.append(model.model)
        return make_provider(model, cooldown_s)

    ctx = WorkerContext(config, Router(config, provider_factory=counting_factory), redis_conn, tmp_path, "w-model")
    ctx.router.warm_up()
    assert len(built) == 1                                    # loaded at start-up, before any job
    queue = Q.queue("default", redis_conn)
    for i in range(2):
        queue.enqueue(JOB_FUNC, {"id": f"ctx-{i}", "action": "classify", "input": f"fix crash {i}",
                                 "labels": ["feat", "fix"]})
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)
    finished = [json.loads(f[b"payload"]) for _i, f in redis_conn.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]
    assert [(p["state"], p["worker"]) for p in finished] == [("done", "w-model")] * 2
    assert len(built) == 1                                    # not once per job


def outlive_ttl(ctx: WorkerContext, queue_name: str, seconds: float, before: str | None) -> dict:
    """A job (run by the worker below) that runs ``seconds`` (longer than the
    heartbeat TTL), then reports whether its started-job entry is live and
    whether job ``before`` (which ran earlier in the same worker) has one."""
    time.sleep(seconds)
    registry = StartedJobRegistry(queue_name, connection=ctx.redis)
    live = registry.get_job_ids(cleanup=False)
    return {"live": get_current_job().id in live and get_current_job().id not in registry.get_expired_job_ids(),
            "before_listed": before in live}


def test_the_heartbeat_keeps_a_long_job_alive_and_ends_with_it(tmp_path, redis_conn, monkeypatch):
    """One heartbeat thread per worker: it renews a job that outlives the TTL
    (else the daemon's reaper would hand it back to RQ as abandoned), and never
    renews a job that has ended (which would put it back in the started-job registry)."""
    monkeypatch.setattr(worker_context, "HEARTBEAT_INTERVAL_S", 0.2)
    # RQ scores started-job entries in whole seconds (floor(now) + TTL, expired once <= floor(now)):
    # with a 1 s TTL an entry renewed 0.2 s ago read as expired whenever a second began in between
    # (the test failed about once in three suite runs); 3 s leaves 2 s of margin, and the jobs
    # still outlive it (3.5 s), so without the heartbeat their entries expire
    monkeypatch.setattr(worker_context, "HEARTBEAT_TTL_S", 3)
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    ctx = build_context(config, redis_conn, tmp_path / "data", "w-beat")
    queue = Q.queue("default", redis_conn)
    first = queue.enqueue(f"{__name__}.outlive_ttl", "default", 3.5, None)
    second = queue.enqueue(f"{__name__}.outlive_ttl", "default", 3.5, first.id)
    worker = ContextWorker([queue], ctx, job_funcs={f"{__name__}.outlive_ttl"}, connection=redis_conn)
    worker.work(burst=True)
    assert first.return_value() == {"live": True, "before_listed": False}
    assert second.return_value() == {"live": True, "before_listed": False}
    assert StartedJobRegistry(queue=queue).get_job_ids(cleanup=False) == []
    assert not any(t.name == "heartbeat" and t.is_alive() for t in threading.enumerate())   # ended with the worker


def test_the_worker_heartbeat_is_one_round_trip(tmp_path, redis_conn, monkeypatch):
    """RQ sends its worker heartbeat (``last_heartbeat``, the TTLs of the
    worker's keys) as three commands, three times per dequeued job;
    ContextWorker sends the same writes in one pipeline."""
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    ctx = build_context(config, redis_conn, tmp_path / "data", "w-hb")
    worker = ContextWorker([Q.queue("default", redis_conn)], ctx, connection=redis_conn, name="w-hb")
    worker.register_birth()
    redis_conn.hset(worker.key, "last_heartbeat", "then")
    redis_conn.persist(worker.key)
    sent = {"commands": 0, "pipelines": 0}
    real_command, real_pipeline = redis_conn.execute_command, redis_conn.pipeline

    def command(*args, **kwargs):
        sent["commands"] += 1
        return real_command(*args, **kwargs)

    def pipeline(*args, **kwargs):
        sent["pipelines"] += 1
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(redis_conn, "execute_command", command)
    monkeypatch.setattr(redis_conn, "pipeline", pipeline)
    worker.heartbeat()
    monkeypatch.undo()
    assert sent == {"commands": 0, "pipelines": 1}
    assert redis_conn.hget(worker.key, "last_heartbeat") != b"then"
    assert 0 < redis_conn.ttl(worker.key) <= worker.worker_ttl + 60
    worker.register_death()
