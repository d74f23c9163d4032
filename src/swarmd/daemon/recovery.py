"""RQ upkeep: abandoned, lost, scheduled and failed jobs (:class:`Recovery`).

* A job whose started-job entry expired (its worker died, on any host) is retried by RQ's
  ``StartedJobRegistry.cleanup`` (``daemon.retry_max`` / ``daemon.retry_intervals_s``) or
  failed; the daemon's reaper runs it every 2 s.
* :func:`abandon_jobs_of`: when a supervised worker exits, its jobs are marked expiring at
  once and the worker is unregistered.
* :func:`promote_due_jobs`: the daemon, not the workers, runs RQ's scheduling of due retries
  (every second, under the lock :data:`SCHEDULER_NAME`).
* Failed jobs are persisted.

Why the daemon schedules and how fast a dead worker is found: docs/design.md.
"""

from __future__ import annotations

import socket
import time

from loguru import logger
from redis import Redis
from rq import Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler

from swarmd import queue as Q

__all__ = ["abandon_jobs_of", "promote_due_jobs", "LOST_AFTER_S", "Recovery", "SCHEDULER_NAME"]

#: Owner of the RQ scheduler locks the daemon holds (stable: a restarted daemon refreshes them).
SCHEDULER_NAME = f"swarmd-daemon@{socket.gethostname()}"


def abandon_jobs_of(redis: Redis, worker_name: str, queues) -> list[str]:
    """Mark the jobs worker ``worker_name`` (known dead) was running as abandoned now.

    ``queues``: the RQ queues to look in (:func:`swarmd.queue.swarmd_queues`).
    Sets the started-job entry of each of the worker's executions
    (``Worker.get_current_executions``) to expire now
    (``StartedJobRegistry.add_execution`` with ``ttl=0``; only entries still
    there: a job that finished is left alone) and unregisters the worker.
    Returns the ids of the jobs marked (``[]`` for a worker RQ does not know);
    the caller then runs ``StartedJobRegistry.cleanup`` (RQ retries or fails each one).
    """
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=redis)
    if worker is None:
        return []
    executions = worker.get_current_executions(refresh=True)
    marked: set[str] = set()
    with redis.pipeline() as pipe:
        for queue in queues:
            registry = StartedJobRegistry(queue=queue)
            running = set(registry.get_job_and_execution_ids(cleanup=False)) if executions else set()
            for execution in executions:
                if (execution.job_id, execution.id) in running:
                    registry.add_execution(execution, pipeline=pipe, ttl=0, xx=True)   # expires now
                    marked.add(execution.job_id)
        pipe.execute()
    worker.register_death()
    if marked:
        logger.warning("worker {} died running job(s) {}; handed back to RQ now", worker_name,
                       ", ".join(sorted(marked)))
    return sorted(marked)


def promote_due_jobs(redis: Redis, queues, serializer) -> None:
    """Move scheduled jobs whose time has come (RQ retries after
    ``daemon.retry_intervals_s``) to their queues: what RQ's scheduler does,
    run here in the caller's process, for the ``queues`` whose scheduler lock
    it holds or can take (owner :data:`SCHEDULER_NAME`, 61 s TTL, refreshed on
    each call)."""
    scheduler = RQScheduler([q.name for q in queues], connection=redis, serializer=serializer,
                            name=SCHEDULER_NAME)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()


#: Seconds an objective must be queued, and its job seen out of every queue, before
#: :meth:`Daemon.requeue_lost` puts the job back (a worker registers a job it took within milliseconds).
LOST_AFTER_S = 10.0


class Recovery:
    """The RQ upkeep of :class:`swarmd.daemon.service.Daemon` (a mixin: uses
    ``redis``, ``store``, ``queues``, ``_lost_seen`` and ``apply_events``)."""

    def worker_died(self, worker_name: str) -> list[str]:
        """A worker this daemon supervises exited: hand the job(s) it was
        running back to RQ at once (:func:`swarmd.daemon.recovery.abandon_jobs_of`,
        then :meth:`reap_abandoned`).  Returns the job ids handed back."""
        marked = abandon_jobs_of(self.redis, worker_name, Q.swarmd_queues(self.redis))
        if marked:
            self.reap_abandoned()
        return marked

    def reap_abandoned(self) -> None:
        """Hand jobs whose worker died mid-job back to RQ's own handling now,
        rather than at some worker's next maintenance (every 10 minutes).

        A swarmd worker's started-job entry lives 15 s past its last
        heartbeat (:data:`swarmd.workers.context.HEARTBEAT_TTL_S`, renewed
        every 5 s while the job runs); once it has expired with the
        job still ``started``, RQ's ``StartedJobRegistry.cleanup`` retries the
        job if its ``Retry`` has runs left (``daemon.retry_max``) or moves it to
        the failed registry, which :meth:`sweep_failed` persists. Runs under
        the queue's maintenance lock, the one RQ workers take for the same
        cleanup, so a job is never handed back twice."""
        for queue in Q.swarmd_queues(self.redis):
            if queue.acquire_maintenance_lock():
                try:
                    StartedJobRegistry(queue=queue).cleanup()
                finally:
                    queue.release_maintenance_lock()

    def requeue_lost(self) -> list[str]:
        """Put back in their queue the jobs a worker popped and died before it
        recorded them as started.  Returns the ids put back.

        RQ workers listening on several queues take a job with BLPOP and only
        then register it as started (its intermediate queue, which closes that
        gap, is used for one queue only): a worker killed in between leaves a
        job with status ``queued`` that is in no queue and no registry, so
        nothing would ever run it.  An objective ``queued`` in the store for
        more than :data:`LOST_AFTER_S` whose job is in that state on two
        passes :data:`LOST_AFTER_S` apart is pushed back to the front of its
        queue (the ``finished`` marker keeps a job that did run from running twice)."""
        candidates = self.store.queued_before(time.time() - LOST_AFTER_S)
        if not candidates:
            self._lost_seen.clear()
            return []
        waiting = {job_id for name in Q.QUEUES for job_id in self.queues[name].get_job_ids()}
        maybe = [oid for oid in candidates if oid not in waiting]
        jobs = Job.fetch_many(maybe, connection=self.redis, serializer=Q.JOB_SERIALIZER) if maybe else []
        now, lost, seen = time.monotonic(), [], {}
        for oid, job in zip(maybe, jobs):
            if job is None or job.get_status(refresh=False) != JobStatus.QUEUED or job.origin not in self.queues:
                continue
            seen[oid] = self._lost_seen.get(oid, now)
            if now - seen[oid] >= LOST_AFTER_S:
                lost.append((oid, job.origin))
        self._lost_seen = {oid: t for oid, t in seen.items() if oid not in dict(lost)}
        for oid, origin in lost:
            self.queues[origin].push_job_id(oid, at_front=True)
            logger.warning("objective {}: its job was taken from queue {} by a worker that died before starting "
                           "it; put back in the queue", oid, origin)
        return [oid for oid, _o in lost]

    def promote_scheduled(self) -> None:
        """Enqueue RQ retries whose time has come (the daemon is RQ's scheduler:
        :func:`swarmd.daemon.recovery.promote_due_jobs`)."""
        promote_due_jobs(self.redis, Q.swarmd_queues(self.redis), Q.JOB_SERIALIZER)

    def sweep_failed(self) -> None:
        """Persist jobs RQ gave up on (its failed-job registry) as ``failed``."""
        for queue in Q.swarmd_queues(self.redis):
            registry = FailedJobRegistry(queue=queue)
            for job_id in registry.get_job_ids():
                job = Job.fetch(job_id, connection=self.redis, serializer=Q.JOB_SERIALIZER) \
                    if Job.exists(job_id, connection=self.redis) else None
                reason, oid = "job failed", job_id.split("__r")[0]   # resumed runs: <id>__r<n>
                if job is not None:
                    info = (job.latest_result().exc_string if job.latest_result() else None) or ""
                    reason = (info.strip().splitlines() or ["job failed"])[-1][:500]
                self.apply_events([(f"failed:{job_id}", "failed", oid, {"reason": reason, "ts": time.time()})])
                registry.remove(job_id, delete_job=False)
