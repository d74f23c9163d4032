"""The worker context: what every job of one worker process shares, built once.

arq builds what jobs share in ``on_startup(ctx)`` and calls every job as
``job(ctx, *args)``.  swarmd's workers are RQ workers, and RQ calls a job as
``func(*args, **kwargs)`` with nothing of the worker's.  So:

* :func:`build_context` (called by :func:`swarmd.workers.main.run_worker`
  before the worker starts) builds the :class:`WorkerContext`: the config,
  the router with its shared :class:`~swarmd.costs.budgets.Budget`, the
  in-process model loaded (:meth:`swarmd.router.Router.warm_up`), the
  governor policy (:class:`PolicySource`), the Redis connection, the data
  directory and the worker's name;
* :class:`ContextWorker` (an :class:`rq.SimpleWorker`: jobs run in the worker
  process, so the model loaded once serves every job) holds that context and
  hands it to each job it runs;
* :class:`ContextJob` (the worker's job class) calls the job function as
  ``func(ctx, *args, **kwargs)``.

Job functions therefore take the context first, as arq's do
(:func:`swarmd.workers.jobs.run_objective`).  The daemon and the resolvers
enqueue only the objective; the context never travels through Redis.  A job
run by a plain ``rq worker`` fails with a ``TypeError`` (its function misses
an argument): run ``swarmd worker``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from redis import Redis
from rq import SimpleWorker
from rq.job import Job

from swarmd.config import Config
from swarmd.costs import Budget
from swarmd.governor import Policy, PolicyError, load_policy
from swarmd.memory.gate import open_router_memory
from swarmd.memory.traces import TraceStore
from swarmd.paths import db_path
from swarmd.router import Router


class PolicySource:
    """The governor policy named by a config (``governor.policy``, relative
    to the config file): loaded on first use and re-read when the file's
    modification time changes, so a policy edit needs no worker restart.
    One per worker; jobs run one at a time, so no locking."""

    def __init__(self, config: Config):
        self.path = config.governor.policy_path(config.source)
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
    none; the daemon writes them).
    """

    config: Config
    router: Router
    redis: Redis
    data_dir: Path
    name: str
    traces: TraceStore | None = None
    policy: PolicySource = field(init=False)

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
    memory = open_router_memory(config, db_path(Path(data_dir), config.storage.db))   # cache + learned gate
    store = db_path(Path(data_dir), config.storage.db)
    ctx = WorkerContext(config, Router(config, budget=Budget(redis, config), memory=memory), redis,
                        Path(data_dir), name, traces=TraceStore(store))
    ctx.router.warm_up()
    try:
        ctx.policy.get()
    except PolicyError as exc:
        logger.warning("governor policy {} unusable; agent objectives will fail until it is fixed: {}",
                       ctx.policy.path, str(exc).splitlines()[0])
    return ctx


class ContextJob(Job):
    """An RQ job whose function receives the worker's context first.

    :class:`ContextWorker` sets :attr:`ctx` before running the job.
    """

    ctx: WorkerContext | None = None

    def _execute(self) -> Any:
        # Job._execute is the one place RQ calls the job function (as
        # func(*args, **kwargs)); overridden to put the context first.  Job
        # arguments as stored in Redis are untouched.
        if self.ctx is None:
            raise RuntimeError(f"job {self.id} has no worker context: run it with swarmd's ContextWorker")
        return self.func(self.ctx, *self.args, **self.kwargs)


class ContextWorker(SimpleWorker):
    """A :class:`rq.SimpleWorker` that hands ``ctx`` to every job it runs
    (jobs are :class:`ContextJob`).  ``queues`` and ``kwargs``: as for
    :class:`rq.SimpleWorker`."""

    def __init__(self, queues, ctx: WorkerContext, **kwargs):
        super().__init__(queues, job_class=ContextJob, **kwargs)
        self.ctx = ctx

    def execute_job(self, job: Job, queue) -> None:
        """Run ``job`` in this process with the worker's context."""
        job.ctx = self.ctx
        super().execute_job(job, queue)
