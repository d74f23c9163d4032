"""The one module that relies on RQ internals (RQ 3.x: ``rq>=3.0,<4`` in pyproject.toml).

Everything else uses RQ's public API.  Three things have no public way:

* :class:`ContextCallJob` overrides ``Job._execute`` (RQ's one call of a job function)
  so that the function gets the worker's context first (:mod:`swarmd.workers.context`).
* :func:`register_claimed` repeats ``rq.executions.prepare_execution``'s bookkeeping inside
  the batch claim's ``MULTI`` (:mod:`swarmd.workers.batching`).
* :class:`QuickStop` subscribes to the worker's command channel with a 1 s listener poll:
  RQ's is 60 s and redis-py 8's ``PubSubWorkerThread.stop()`` joins that thread, so a
  stopping worker could wait 60 s.

``tests/test_rqcompat.py`` fails when the installed RQ changes any of them.
"""

from __future__ import annotations

from typing import Any

from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue

__all__ = ["ContextCallJob", "QuickStop", "register_claimed", "PUBSUB_POLL_S"]

#: seconds between the command listener's wake-ups (RQ: 60); also the longest a stopping
#: worker waits for that thread
PUBSUB_POLL_S = 1.0


class ContextCallJob(Job):
    """An RQ job whose function receives ``ctx`` first: ``func(ctx, *args, **kwargs)``.

    The worker sets :attr:`ctx`, :attr:`allowed_funcs` and :attr:`ended`
    before running the job.  Raises ``RuntimeError`` when run without a
    context and ``PermissionError`` when the job names a function outside
    :attr:`allowed_funcs` (before importing it).  Job arguments as stored in
    Redis are untouched.
    """

    ctx: Any = None
    #: the function names this job may name
    allowed_funcs: frozenset[str] = frozenset()
    #: called with the job when its function has returned or raised
    ended = None

    def _execute(self) -> Any:
        try:
            if self.ctx is None:
                raise RuntimeError(f"job {self.id} has no worker context: run it with swarmd's ContextWorker")
            if self.func_name not in self.allowed_funcs:
                raise PermissionError(f"job {self.id} names {self.func_name!r}, which is not a swarmd job "
                                      f"function ({', '.join(sorted(self.allowed_funcs))}); refused")
            return self.func(self.ctx, *self.args, **self.kwargs)
        finally:
            if self.ended is not None:
                self.ended(self)


def register_claimed(worker, job: Job, queue: Queue, pipe) -> Execution:
    """Queue ``pipe`` (a pipeline in ``MULTI``) to take ``job`` out of
    ``queue`` and register it as started by ``worker`` (an RQ worker), as RQ
    registers a job it dequeues: an ``Execution`` in the started-job registry
    and in the worker's execution index, TTL ``worker.get_heartbeat_ttl(job)``
    seconds, and job status ``started``.  Returns the execution; the caller
    adds it to ``worker.executions`` once the transaction has run."""
    queue.remove(job, pipeline=pipe)
    execution = Execution.create(job, worker.get_heartbeat_ttl(job), pipeline=pipe, worker_name=worker.name)
    job.prepare_for_execution(worker.name, pipe)
    return execution


class QuickStop:
    """Mixin for an RQ worker class: :meth:`subscribe` is RQ's ``Worker.subscribe`` (the
    worker's command channel: ``stop-job``, ``shutdown``) with the listener thread polling
    every :data:`PUBSUB_POLL_S` seconds instead of 60 (module docstring)."""

    def subscribe(self) -> None:
        """Subscribe to this worker's channel (``pubsub_channel_name``), as RQ does."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=PUBSUB_POLL_S, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)
