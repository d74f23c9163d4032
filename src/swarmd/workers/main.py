"""One swarmd worker process: ``swarmd worker``.

Worker class: :class:`rq.SimpleWorker`.  RQ's default :class:`rq.Worker`
forks a child per job, so anything a job loads dies with the child: the model
would be loaded again for every objective (seconds each, and the KV cache of
the few-shot prefix lost).  ``SimpleWorker`` runs jobs in the worker process
itself, so the router and its model are loaded once (:func:`init_router`) and
reused.  What we give up: a job that crashes the interpreter takes the worker
with it — the daemon's supervisor restarts it, and RQ re-queues the abandoned
job through its ``Retry`` policy.  Job timeouts still work (RQ's
SIGALRM-based death penalty runs in the main thread).
"""

from __future__ import annotations

import os
import sys

from loguru import logger
from redis import Redis
from rq import SimpleWorker

from swarmd.config import load_config
from swarmd.workers.jobs import WORKER_NAME, init_router, warm_up
from swarmd.workers.parking import worker_queues


def run_worker(redis_url: str, config_path: str | None = None, burst: bool = False,
               name: str | None = None) -> int:
    """Run one worker until SIGTERM (or, with ``burst``, until the queues are empty).

    Listens on this site's resume queue, then :data:`swarmd.constants.QUEUES`
    in priority order (:func:`swarmd.workers.parking.worker_queues`).  Returns an
    exit code (0 ok).  Raises :class:`swarmd.config.ConfigError` for a bad config.
    """
    if config_path:
        os.environ["SWARMD_CONFIG"] = os.path.abspath(config_path)
    config = load_config(config_path)
    router = init_router(config)
    warm_up(router)
    connection = Redis.from_url(redis_url)
    queues = worker_queues()
    worker = SimpleWorker(queues, connection=connection, name=name or WORKER_NAME)
    logger.info("worker {} listening on {} (SimpleWorker: model loaded once per process)",
                worker.name, ", ".join(queues))
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m swarmd.workers.main --redis-url URL [--config FILE] [--burst]``."""
    import argparse
    parser = argparse.ArgumentParser(prog="swarmd worker", description="Run one swarmd RQ worker.")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="Redis URL (default $REDIS_URL)")
    parser.add_argument("--config", help="llm_config.yaml")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default host:pid)")
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("no Redis: give --redis-url or set REDIS_URL")
    return run_worker(args.redis_url, args.config, args.burst, args.name)


if __name__ == "__main__":
    sys.exit(main())
