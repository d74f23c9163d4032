"""Jobs of a dead worker handed back to RQ at once.

RQ counts a job abandoned when its started-job entry (``rq:wip:<queue>``, one
member ``<job id>:<execution id>`` per running job, scored by the time it
expires) is past its expiry: then ``StartedJobRegistry.cleanup`` retries it
(``Retry``: ``daemon.retry_max`` / ``daemon.retry_intervals_s``) or moves it to
the failed registry.  swarmd's workers renew that entry every 5 s with a 15 s
TTL while a job runs (:mod:`swarmd.workers.context`), so a worker that dies on
any host is found by the daemon's reaper (every 2 s) within ~17 s.

When ``swarmd --workers N`` sees one of its own workers exit
(:class:`swarmd.daemon.supervisor.Supervisor`), there is no need to wait even
that long: :func:`abandon_jobs_of` marks the entries of every job that worker
was running as expired now (RQ keeps the set of a worker's executions at
``rq:worker:<name>:executions``), and the caller runs the same RQ cleanup.
The dead worker is also unregistered, so ``swarmctl status`` stops listing it.

RQ retries a job after ``daemon.retry_intervals_s`` by putting it in a
scheduled-job registry, which an RQ *scheduler* moves to its queue when the
time comes.  RQ runs that scheduler in a process forked by a worker, holding
a lock for 61 s: a worker SIGKILLed leaves it running as an orphan, and a
worker whose host died leaves the lock held for a minute and the retries
waiting until another worker's next maintenance (10 minutes).  So swarmd's
workers run no scheduler; the daemon does it (:func:`promote_due_jobs`,
every second, under the lock name :data:`SCHEDULER_NAME`, which a restarted
daemon takes over at once).
"""

from __future__ import annotations

import socket

from loguru import logger
from redis import Redis
from rq import Worker
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler

__all__ = ["abandon_jobs_of", "promote_due_jobs", "SCHEDULER_NAME"]

#: Owner of the RQ scheduler locks the daemon holds (stable: a restarted daemon refreshes them).
SCHEDULER_NAME = f"swarmd-daemon@{socket.gethostname()}"


def abandon_jobs_of(redis: Redis, worker_name: str, queues) -> list[str]:
    """Mark the jobs worker ``worker_name`` (known dead) was running as abandoned now.

    ``queues``: the RQ queues to look in (:func:`swarmd.workers.parking.swarmd_queues`).
    Sets the started-job entry of each of its executions to an expiry in the
    past (only entries still there: a job that finished is left alone) and
    unregisters the worker.  Returns the ids of the jobs marked; the caller
    then runs ``StartedJobRegistry.cleanup`` (RQ retries or fails each one).
    """
    members = [m.decode() if isinstance(m, bytes) else m
               for m in redis.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker_name))]
    keys = [StartedJobRegistry(queue=queue).key for queue in queues]
    pairs = [(key, member) for key in keys for member in members]
    pipe = redis.pipeline()
    for key, member in pairs:
        pipe.zscore(key, member)
    present = [pair for pair, score in zip(pairs, pipe.execute()) if score is not None]
    for key, member in present:
        pipe.zadd(key, {member: 1}, xx=True)    # score 1: expired in 1970
    pipe.execute()
    marked = sorted({member.split(":", 1)[0] for _key, member in present})
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=redis)
    if worker is not None:
        worker.register_death()
    if marked:
        logger.warning("worker {} died running job(s) {}; handed back to RQ now", worker_name, ", ".join(marked))
    return marked


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
