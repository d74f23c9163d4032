"""Worker-side batching: one model pass for several queued label objectives.

For each job :class:`swarmd.workers.context.ContextWorker` dequeues:

1. :func:`claim_batch`: for a batchable action (:meth:`Router.batches`) and
   ``daemon.batch_max`` > 1, takes up to ``batch_max - 1`` further jobs with the same
   :func:`batch_key` from the front of the same queue, in one Redis transaction that gives
   each the bookkeeping RQ gives a dequeued job (:mod:`swarmd.rqcompat`);
2. :func:`route_ahead`: ``started`` events, then one :meth:`Router.route_many` call (each
   objective's cancel checked before it is routed and before each escalation); each
   result is left in :attr:`WorkerContext.routed`;
3. each job then runs as RQ runs one job, taking its routed result; one that fails fails alone.

A job is always either queued or registered started, so a killed worker's batch is retried
by RQ.  Answers equal the unbatched ones.  ``batch_max: 1`` turns it off.  See docs/design.md.
"""

from __future__ import annotations

import time

from loguru import logger
from redis.exceptions import WatchError
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException

from swarmd.config import AGENT_ACTION
from swarmd.queue import JOB_FUNC, Started, emit, finished_key, stop_check
from swarmd.rqcompat import register_claimed

#: Queued ids looked at per free place in a batch: a batch of ``batch_max`` looks at the first
#: ``(batch_max - 1) * PEEK_FACTOR`` ids of the queue for jobs it can take.
PEEK_FACTOR = 4
#: Tries of the claim transaction when the queue changes between the look and the claim
#: (another worker took a job, the daemon enqueued one); after that the job runs alone.
CLAIM_TRIES = 3


def batch_key(ctx, job: Job) -> tuple | None:
    """What ``job`` must share with the jobs routed together with it:
    ``(action, labels tuple, strategy, max_cost_usd)`` of a
    :data:`~swarmd.queue.JOB_FUNC` job whose action the context's
    router batches (:meth:`swarmd.router.Router.batches`), else ``None`` (also
    for a job whose data cannot be read: it then runs, and fails, alone)."""
    try:
        if job.func_name != JOB_FUNC or len(job.args) != 1 or job.kwargs:
            return None
        objective = job.args[0]
    except Exception:  # noqa: BLE001 - unreadable job data: RQ reports it when the job runs
        return None
    if not isinstance(objective, dict) or objective.get("action") == AGENT_ACTION \
            or not isinstance(objective.get("input"), str):
        return None
    action, strategy = objective.get("action"), objective.get("strategy")
    if action not in ctx.config.actions:
        return None
    try:
        if not ctx.router.batches(action, strategy):
            return None
    except Exception:  # noqa: BLE001 - the model's provider cannot be built: the job routes alone (and reports it)
        logger.exception("worker {}: cannot tell whether {} objectives can be batched", ctx.name, action)
        return None
    return (action, tuple(objective.get("labels") or ()), ctx.config.strategy_of(action, strategy),
            objective.get("max_cost_usd"))


def claim_batch(worker, job: Job, queue: Queue) -> list[tuple[Job, Execution]]:
    """The further jobs ``worker`` (a :class:`~swarmd.workers.context.ContextWorker`)
    runs with ``job``, just dequeued from ``queue`` and registered
    (``worker.prepare_execution``): ``[(job, execution), ...]``, at most
    ``daemon.batch_max - 1``, in queue order, each already removed from the
    queue and registered as started by ``worker`` (module docstring, step 1).
    ``[]`` when batching is off, ``job`` cannot be batched, no queued job
    matches it, the queue kept changing (:data:`CLAIM_TRIES`) or the claim
    failed (logged; e.g. Redis away).  A claim whose reply was lost leaves
    its jobs registered as started by this worker: RQ retries them as
    abandoned once their entries expire."""
    ctx = worker.ctx
    room = ctx.config.daemon.batch_max - 1
    if room < 1 or JOB_FUNC not in worker.job_funcs:
        return []
    key = batch_key(ctx, job)
    if key is None:
        return []
    try:
        return _claim(worker, job, queue, key, room)
    except Exception as exc:  # noqa: BLE001 - e.g. Redis away: the job runs alone (and meets the same error)
        logger.warning("worker {}: could not claim jobs to batch with {} ({}: {}); it runs alone",
                       worker.name, job.id, type(exc).__name__, exc)
        return []


def _claim(worker, job: Job, queue: Queue, key: tuple, room: int) -> list[tuple[Job, Execution]]:
    """The claim transaction of :func:`claim_batch` (module docstring, step 1)."""
    ctx, conn = worker.ctx, worker.connection
    with conn.pipeline() as pipe:
        for _try in range(CLAIM_TRIES):
            try:
                pipe.watch(queue.key)
                ids = queue.get_job_ids(0, room * PEEK_FACTOR)
                if not ids:
                    return []
                fetched = worker.job_class.fetch_many(ids, connection=conn, serializer=worker.serializer)
                mates = [m for m in fetched if m is not None and m.id != job.id and batch_key(ctx, m) == key][:room]
                if not mates:
                    return []
                pipe.multi()
                job.prepare_for_execution(worker.name, pipe)
                claimed = [(mate, register_claimed(worker, mate, queue, pipe)) for mate in mates]
                pipe.execute()
            except WatchError:
                continue
            for _mate, execution in claimed:
                worker.executions[execution.id] = execution
            return claimed
    logger.debug("worker {}: queue {} kept changing; job {} runs alone", worker.name, queue.name, job.id)
    return []


def route_ahead(worker, jobs: list[Job]) -> None:
    """Route the objectives of ``jobs`` (a batch from :func:`claim_batch`,
    the dequeued job first) with one :meth:`Router.route_many` call and leave
    each :class:`~swarmd.router.RouteResult` in ``worker.ctx.routed[objective
    id]``, after reporting their ``started`` events (one pipeline).  Jobs
    whose objective was reported final already are left out (their run only
    logs that).  Runs under the first job's timeout (``job.timeout`` seconds).
    If the batch call itself raises (a timeout, a bug; a bad request raises
    :class:`~swarmd.router.RequestError` for all of them alike), it is logged
    and each objective is left with ``None``: its job routes it alone, without
    a second ``started`` event (:func:`swarmd.workers.jobs.run_objective` skips
    the check and ``started`` for an id found in ``ctx.routed``)."""
    ctx = worker.ctx
    objectives = [j.args[0] for j in jobs]
    ids = [o["id"] for o in objectives]
    finals = ctx.redis.mget([finished_key(i) for i in ids])
    todo = [o for o, final in zip(objectives, finals) if final is None]
    if not todo:
        return
    pipe = ctx.redis.pipeline(transaction=False)
    now = time.time()
    for objective in todo:
        emit(pipe, Started(objective["id"], worker=ctx.name, ts=now))
    pipe.execute()
    first, todo_ids = todo[0], [o["id"] for o in todo]
    ctx.routed.update(dict.fromkeys(todo_ids))
    try:
        with worker.death_penalty_class(jobs[0].timeout or Queue.DEFAULT_TIMEOUT, JobTimeoutException,
                                        job_id=jobs[0].id):
            results = ctx.router.route_many(first["action"], [o["input"] for o in todo], first.get("labels") or (),
                                            request_ids=todo_ids, objective_ids=todo_ids,
                                            max_cost_usd=first.get("max_cost_usd"), strategy=first.get("strategy"),
                                            should_stop=[stop_check(ctx.redis, i) for i in todo_ids])
    except Exception as exc:  # noqa: BLE001 - each job then routes its objective alone
        logger.warning("worker {}: batch of {} objectives ({}) could not be routed together ({}: {}); "
                       "routing them one by one", worker.name, len(todo), ", ".join(todo_ids), type(exc).__name__, exc)
        return
    ctx.routed.update(zip(todo_ids, results))
    logger.debug("worker {}: {} objectives routed as one batch: {}", worker.name, len(todo), ", ".join(todo_ids))
