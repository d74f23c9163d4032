"""The worker context: what every job of one worker process shares, built once.

* :func:`build_context` builds the :class:`WorkerContext`: config, router with its shared
  :class:`~swarmd.costs.budgets.Budget` and the in-process model loaded, governor policy
  (:class:`PolicySource`), Redis connection, data directory, worker name;
* :class:`ContextWorker` (an :class:`rq.SimpleWorker`) holds it, runs label batches
  (:mod:`swarmd.workers.batching`) and renews a running job's heartbeat every
  :data:`HEARTBEAT_INTERVAL_S` s with a TTL of :data:`HEARTBEAT_TTL_S` s;
* :class:`ContextJob` calls a job function as ``func(ctx, *args, **kwargs)``.

Jobs are JSON (:data:`swarmd.queue.JOB_SERIALIZER`) and only :data:`swarmd.queue.JOB_FUNCS`
run, so writing to Redis cannot choose the code a worker runs; a plain ``rq worker`` fails
them (run ``swarmd worker``).  Workers run no RQ scheduler (the daemon does).  Why, and the
heartbeat's timing: docs/design.md.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from rq.worker import WorkerStatus

from swarmd.config import Config
from swarmd.costs import Budget
from swarmd.governor import Policy, PolicyError, load_policy
from swarmd.memory.gate import open_router_memory
from swarmd.agent.traces import TraceStore
from swarmd.paths import db_path
from swarmd.router import Router, RouteResult
from swarmd.rqcompat import ContextCallJob, QuickStop
from swarmd.testing.failpoints import failpoint
from swarmd.workers.batching import claim_batch, route_ahead
from swarmd.queue import JOB_FUNCS, JOB_SERIALIZER, publish_tier_state

#: Seconds between heartbeats of a worker while it runs a job.
HEARTBEAT_INTERVAL_S = 5
#: Seconds a running job's started-job entry lives without a heartbeat: how long after
#: its worker died (SIGKILL, power loss, any host) RQ may count the job abandoned.
HEARTBEAT_TTL_S = 15


class PolicySource:
    """The governor policy named by a config (``governor.policy``, relative
    to the config file): loaded on first use and re-read when the file's
    modification time changes, so a policy edit needs no worker restart.
    One per worker; jobs run one at a time, so no locking."""

    def __init__(self, config: Config):
        self.path = config.policy_path
        self._loaded: tuple[int, Policy] | None = None

    def get(self) -> Policy:
        """The current policy.  Raises :class:`swarmd.governor.PolicyError`
        for a missing, unreadable or invalid file."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError as exc:
            raise PolicyError(str(self.path), "", "a readable policy file", exc.strerror or str(exc)) from None
        if self._loaded is None or self._loaded[0] != stamp:
            self._loaded = (stamp, load_policy(self.path))
        return self._loaded[1]


@dataclass
class WorkerContext:
    """What every job of one worker process shares (see the module docstring).

    ``router``: built from ``config``, with the workers' shared budget on
    ``redis``; it writes no ledger (ledger rows travel to the daemon in the
    ``finished`` event: workers may run on hosts without the daemon's
    SQLite); it reads the learning memory (answer cache, learned gate) from
    the store under ``data_dir`` (empty on a host without the daemon's file).  ``redis``: the worker's connection (events, parks).
    ``data_dir``: where objective workspaces go (``<data_dir>/workspaces/<id>``).
    ``name``: the worker's name, reported in events.  ``traces``: the
    execution traces in the same store, read by agent objectives (``None``:
    none; the daemon writes them); the goal embedder they use is loaded on the
    first agent objective, once per process (:func:`swarmd.agent.traces.goal_representation`;
    loading it takes ~0.2 s, which a worker that never runs an agent objective does not pay).
    """

    config: Config
    router: Router
    redis: Redis
    data_dir: Path
    name: str
    traces: TraceStore | None = None
    policy: PolicySource = field(init=False)
    #: results routed ahead in a batch (:mod:`swarmd.workers.batching`), by objective id, until
    #: the objective's job takes its own; ``None``: "started" reported, the job routes it alone
    routed: dict[str, RouteResult | None] = field(default_factory=dict)
    #: the router's tier state last published (:func:`publish_tiers`)
    published_tiers: dict | None = None

    def __post_init__(self) -> None:
        self.policy = PolicySource(self.config)

    def close(self) -> None:
        """Release what the context holds (the router's providers and model)."""
        self.router.close()
        if self.traces is not None:
            self.traces.close()


def build_context(config: Config, redis: Redis, data_dir: Path, name: str) -> WorkerContext:
    """Build a worker's context at start-up: the router with its budget, the
    starting tier's model loaded, the policy read once (an unusable policy is
    logged: agent objectives then fail with the reason, others run)."""
    store = db_path(Path(data_dir), config.storage.db)
    memory = open_router_memory(config, store)   # cache + learned gate
    ctx = WorkerContext(config, Router(config, budget=Budget(redis, config), memory=memory), redis,
                        Path(data_dir), name, traces=TraceStore(store))
    ctx.router.warm_up()
    publish_tiers(ctx)
    try:
        ctx.policy.get()
    except PolicyError as exc:
        logger.warning("governor policy {} unusable; agent objectives will fail until it is fixed: {}",
                       ctx.policy.path, str(exc).splitlines()[0])
    return ctx


def publish_tiers(ctx: WorkerContext) -> None:
    """Publish the router's tier state (:meth:`swarmd.router.Router.tier_state`: models
    loaded, cool-downs) for ``swarmctl status`` when it changed since the last publication
    (one Redis write then, none otherwise); a Redis error is logged, never raised."""
    state = ctx.router.tier_state()
    if state == ctx.published_tiers:
        return
    try:
        publish_tier_state(ctx.redis, ctx.name, state)
    except Exception as exc:
        logger.warning("could not publish the tier state: {}", exc)
    else:
        ctx.published_tiers = state


class ContextJob(ContextCallJob):
    """An RQ job whose function receives the worker's context first
    (:class:`swarmd.rqcompat.ContextCallJob`).

    :class:`ContextWorker` sets :attr:`ctx` (and :attr:`ended`) before running the job.
    """

    ctx: WorkerContext | None = None
    #: the function names this job may name (set by :class:`ContextWorker`)
    allowed_funcs: frozenset[str] = JOB_FUNCS
    #: called with the job when its function has returned or raised (the worker's heartbeats for it end)
    ended = None


class ContextWorker(QuickStop, SimpleWorker):
    """A :class:`rq.SimpleWorker` that hands ``ctx`` to every job it runs
    (jobs are :class:`ContextJob`).  ``job_funcs``: the job functions it
    runs (default :data:`swarmd.queue.JOB_FUNCS`; any other job
    fails with ``PermissionError``).  ``queues`` and ``kwargs``: as for
    :class:`rq.SimpleWorker` (``serializer`` defaults to JSON)."""

    def __init__(self, queues, ctx: WorkerContext, job_funcs: frozenset[str] = JOB_FUNCS, **kwargs):
        kwargs.setdefault("serializer", JOB_SERIALIZER)
        super().__init__(queues, job_class=ContextJob, **kwargs)
        self.ctx = ctx
        self.job_funcs = frozenset(job_funcs)
        self._beat_lock = threading.Lock()      # guards _running and _beat_at; held while a heartbeat is sent
        self._running: dict[Job, Any] = {}      # job -> its RQ Execution, while its heartbeat is due
        self._beat_at = 0.0                     # time.monotonic() of the last heartbeat (or the batch's start)
        self._beater: tuple[threading.Thread, threading.Event] | None = None

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        """RQ's worker heartbeat (the worker's ``last_heartbeat`` and the TTLs
        of its keys), sent in one round trip when RQ gives no pipeline: RQ
        sends its three commands one by one, three times per job it dequeues
        (a third of a cheap objective's round trips when it runs alone)."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            pipe.execute()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """:data:`HEARTBEAT_TTL_S`: :meth:`execute_job` renews it while the job runs."""
        return HEARTBEAT_TTL_S

    def execute_job(self, job: Job, queue) -> None:
        """Run ``job`` in this process with the worker's context; meanwhile
        the worker's heartbeat thread (:meth:`_beat`) renews its heartbeat (as
        RQ's forking worker does from its parent) until its function returns.

        With it run the jobs :func:`swarmd.workers.batching.claim_batch`
        takes from the same queue (none unless ``job`` is a label objective
        and ``daemon.batch_max`` > 1): their objectives are routed together
        first (:func:`~swarmd.workers.batching.route_ahead`), then every job
        is run and completed on its own, in order; the heartbeat covers each
        job until its function returns."""
        execution = self.prepare_execution(job)
        batch = [(job, execution)]
        self._keep_beating(batch, start=True)
        try:
            batch += claim_batch(self, job, queue)
            self._keep_beating(batch)
            if len(batch) > 1:
                route_ahead(self, [j for j, _e in batch])
            for n, (one, one_execution) in enumerate(batch):
                if n == 1:
                    failpoint("worker_mid_batch", one.id)
                one.ctx, one.allowed_funcs, one.ended = self.ctx, self.job_funcs, self._stop_beating
                self.perform_job(one, queue, one_execution)
                self._stop_beating(one)             # also when RQ failed it before its function ran
        finally:
            with self._beat_lock:
                self._running.clear()
            for one, _e in batch:                   # routed results of jobs that did not take theirs
                self.ctx.routed.pop(one.id, None)
        self.set_state(WorkerStatus.IDLE)

    def _keep_beating(self, batch: list, start: bool = False) -> None:
        """Have the heartbeat thread renew ``batch``'s ``[(job, execution)]``
        (``start``: a new batch, first heartbeat due in :data:`HEARTBEAT_INTERVAL_S`);
        starts the thread on the worker's first job."""
        with self._beat_lock:
            if self._beater is None:
                stop = threading.Event()
                thread = threading.Thread(target=self._beat, args=(stop,), name="heartbeat", daemon=True)
                self._beater = (thread, stop)
                thread.start()
            if start:
                self._beat_at = time.monotonic()
            self._running.update(batch)

    def _stop_beating(self, job: Job) -> None:
        """``job``'s function returned or raised: no more heartbeats for it
        (waits for one being sent), so RQ's record of its end is final."""
        with self._beat_lock:
            self._running.pop(job, None)

    def _beat(self, stop: threading.Event) -> None:
        """The heartbeat thread: wakes every :data:`HEARTBEAT_INTERVAL_S` / 5 s
        until ``stop``; once :data:`HEARTBEAT_INTERVAL_S` s have passed since
        the last heartbeat, renews that of every running job."""
        while not stop.wait(HEARTBEAT_INTERVAL_S / 5):
            with self._beat_lock:
                if not self._running or time.monotonic() - self._beat_at < HEARTBEAT_INTERVAL_S:
                    continue
                for job, execution in list(self._running.items()):
                    try:
                        self.maintain_heartbeats(job, execution)
                    except Exception as exc:  # noqa: BLE001 - Redis away for a moment: the next beat may work
                        logger.warning("worker {}: heartbeat for job {} failed: {}", self.name, job.id, exc)
                self._beat_at = time.monotonic()

    def teardown(self) -> None:
        """End the heartbeat thread, then RQ's teardown (the worker stops)."""
        if self._beater is not None:
            thread, stop = self._beater
            stop.set()
            thread.join(timeout=10)
            self._beater = None
        super().teardown()
