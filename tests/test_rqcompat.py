"""swarmd.rqcompat against the installed RQ: fails when RQ changes what it relies on.

:mod:`swarmd.rqcompat` is the one module touching RQ internals: it overrides
``Job._execute`` and repeats ``rq.executions.prepare_execution``'s
bookkeeping inside a transaction.  The checks below read the installed RQ
(signatures, and which calls its own code makes) and run both against a real
Redis, so an RQ upgrade that moves either fails here, not in production.
"""

from __future__ import annotations

import inspect
import threading
from rq import Queue
from rq.worker.base import BaseWorker

import rq
from rq import SimpleWorker
from rq.executions import Execution, prepare_execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from swarmd import queue as Q
from swarmd.rqcompat import ContextCallJob, QuickStop, register_claimed
from tests.wait import wait_until


def test_the_pinned_major_version_is_the_installed_one():
    # pyproject.toml pins rq>=3.0,<4: the checks below were written against RQ 3
    assert rq.__version__.split(".")[0] == "3", rq.__version__


def test_job_execute_is_still_the_one_call_of_the_job_function():
    assert list(inspect.signature(Job._execute).parameters) == ["self"]
    assert "self._execute()" in inspect.getsource(Job.perform)        # perform runs it
    assert "self.func(*self.args, **self.kwargs)" in inspect.getsource(Job._execute)


def test_prepare_execution_still_does_what_register_claimed_repeats():
    assert list(inspect.signature(Execution.create).parameters) == ["job", "ttl", "pipeline", "worker_name"]
    assert list(inspect.signature(Job.prepare_for_execution).parameters) == ["self", "worker_name", "pipeline"]
    source = inspect.getsource(prepare_execution)
    assert "Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=worker.name)" in source
    assert "worker.get_heartbeat_ttl(job)" in source
    assert "worker.executions[execution.id] = execution" in source


def job_with_context(ctx, word):
    """A job function for :class:`ContextCallJob`: the context comes first."""
    return [ctx, word]


def test_context_call_job_passes_the_context_first(redis_conn):
    queue = Q.queue("default", redis_conn)
    func = f"{__name__}.job_with_context"
    job = queue.enqueue(func, "hello")
    ended = []
    mine = ContextCallJob.fetch(job.id, connection=redis_conn, serializer=Q.JOB_SERIALIZER)
    mine.ctx, mine.allowed_funcs, mine.ended = "the-context", frozenset({func}), ended.append
    assert mine.perform() == ["the-context", "hello"]
    assert ended == [mine]
    mine.allowed_funcs = frozenset()
    try:
        mine.perform()
    except PermissionError as exc:
        assert func in str(exc)
    else:
        raise AssertionError("a job naming a function outside allowed_funcs ran")


def test_register_claimed_leaves_a_job_as_rq_leaves_one_it_dequeued(redis_conn):
    queue = Q.queue("default", redis_conn)
    func = f"{__name__}.job_with_context"
    dequeued, claimed = queue.enqueue(func, "a"), queue.enqueue(func, "b")
    worker = SimpleWorker([queue], connection=redis_conn, serializer=Q.JOB_SERIALIZER, name="w-compat")
    worker.register_birth()
    redis_conn.lrem(queue.key, 1, dequeued.id)      # as RQ's dequeue pops it
    by_rq = prepare_execution(worker, dequeued)
    dequeued.prepare_for_execution(worker.name, redis_conn)
    with redis_conn.pipeline() as pipe:
        pipe.multi()
        by_us = register_claimed(worker, claimed, queue, pipe)
        pipe.execute()
    worker.executions[by_us.id] = by_us
    registry = StartedJobRegistry(queue=queue)
    assert set(registry.get_job_and_execution_ids(cleanup=False)) == {(dequeued.id, by_rq.id),
                                                                      (claimed.id, by_us.id)}
    assert queue.get_job_ids() == []
    assert {e.id for e in worker.get_current_executions(refresh=True)} == {by_rq.id, by_us.id}
    for job in (dequeued, claimed):
        assert Job.fetch(job.id, connection=redis_conn,
                         serializer=Q.JOB_SERIALIZER).get_status() == JobStatus.STARTED
    with redis_conn.pipeline() as pipe:     # read at one instant: ours was set after RQ's, with the same TTL
        ttl_rq, ttl_us = pipe.pttl(by_rq.key).pttl(by_us.key).execute()
    assert 0 < ttl_rq <= ttl_us <= worker.get_heartbeat_ttl(claimed) * 1000


def test_quick_stop_repeats_rqs_subscribe_but_for_the_poll_interval():
    source = inspect.getsource(BaseWorker.subscribe)
    assert "self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})" in source
    assert "run_in_thread(" in source and "exception_handler=self._pubsub_exception_handler" in source
    assert "self.pubsub_thread.stop()" in inspect.getsource(BaseWorker.unsubscribe)


class _Worker(QuickStop, SimpleWorker):
    pass


def test_a_worker_whose_channel_was_just_unsubscribed_stops_without_waiting_for_its_listener(redis_conn):
    """The race of rq 3 with redis-py 8: the listener thread, once unsubscribed, waits up to
    its poll interval for a new subscription, and ``unsubscribe()`` joins it (RQ: 60 s)."""
    worker = _Worker([Queue("q", connection=redis_conn)], connection=redis_conn)
    worker.subscribe()
    wait_until(lambda: worker.pubsub.subscribed, 30, "the listener subscribed")
    worker.pubsub.unsubscribe()
    wait_until(lambda: not worker.pubsub.subscribed, 30, "the listener saw its unsubscribe")
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    stopping.start()
    stopping.join(timeout=30)    # RQ's 60 s listener would still be waiting
    assert not stopping.is_alive()
