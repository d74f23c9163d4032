"""One swarmd worker process (the command line ``swarmd worker`` is in :mod:`swarmd.cli.daemon`).

Worker class: :class:`swarmd.workers.context.ContextWorker`, an
:class:`rq.SimpleWorker`.  RQ's default :class:`rq.Worker` forks a child per
job, so anything a job loads dies with the child: the model would be loaded
again for every objective (seconds each, and the KV cache of the few-shot
prefix lost).  ``SimpleWorker`` runs jobs in the worker process itself, so
the worker context (:func:`swarmd.workers.context.build_context`: router,
model, budget, policy) is built once at start-up and handed to every job.
What we give up: a job that crashes the interpreter takes the worker with it
— the daemon's supervisor restarts it, and RQ re-queues the abandoned job
through its ``Retry`` policy.  Job timeouts still work (RQ's SIGALRM-based
death penalty runs in the main thread).
"""

from __future__ import annotations

import os
import socket

from loguru import logger
from redis import Redis

from swarmd.config import load_config
from swarmd.paths import data_dir as resolve_data_dir
from swarmd.workers.context import ContextWorker, build_context
from swarmd.workers.parking import worker_queues


def default_worker_name() -> str:
    """``<host>:<pid>``: the name of a worker started without ``--name``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(redis_url: str, config_path: str | None = None, burst: bool = False,
               name: str | None = None, data_dir: str | os.PathLike | None = None) -> int:
    """Run one worker until SIGTERM (or, with ``burst``, until the queues are empty).

    Listens on this site's resume queue, then :data:`swarmd.constants.QUEUES`
    in priority order (:func:`swarmd.workers.parking.worker_queues`).
    ``data_dir``: where objective workspaces go (resolved by
    :func:`swarmd.paths.data_dir` when ``None``).  Returns an exit code (0
    ok).  Raises :class:`swarmd.config.ConfigError` for a bad config.
    """
    config = load_config(config_path)
    connection = Redis.from_url(redis_url)
    ctx = build_context(config, connection, resolve_data_dir(data_dir), name or default_worker_name())
    queues = worker_queues()
    worker = ContextWorker(queues, ctx, connection=connection, name=ctx.name)
    logger.info("worker {} listening on {} (data dir {}; context built once: model loaded once per process)",
                worker.name, ", ".join(queues), ctx.data_dir)
    try:
        # no RQ scheduler here: the daemon runs it (swarmd.daemon.recovery.promote_due_jobs)
        worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
    finally:
        ctx.close()
    return 0

