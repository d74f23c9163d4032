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

import ctypes
import os
import signal
import socket
import sys
import time

from loguru import logger
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmd import telemetry
from swarmd.config import load_config
from swarmd.governor import envelope
from swarmd.governor.secrets import register, register_config
from swarmd.paths import data_dir as resolve_data_dir
from swarmd.workers.context import ContextWorker, build_context
from swarmd.queue import SUPERVISOR_PID_ENV, worker_queues


#: Longest wait (seconds) between a worker's attempts to reach a Redis that went away: RQ's
#: backoff doubles from 1 s up to this (RQ's own cap, 60 s, would add up to a minute after an outage).
MAX_RECONNECT_WAIT_S = 8.0


def wait_for_redis(connection: Redis, max_wait_s: float = MAX_RECONNECT_WAIT_S) -> None:
    """Block until ``connection`` answers PING, retrying with a backoff doubling
    from 0.5 s to ``max_wait_s`` seconds (one log line per retry): a worker
    started while Redis is away comes up when it is back instead of exiting."""
    delay = 0.5
    while True:
        try:
            connection.ping()
            return
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.error("worker: cannot reach Redis ({}); retrying in {:.1f}s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_wait_s)


#: prctl(2) option: the signal this process gets when its parent dies (linux/prctl.h)
_PR_SET_PDEATHSIG = 1


def end_with_supervisor(env: dict | None = None) -> bool:
    """Ask Linux for SIGTERM (RQ's warm shutdown: the current job finishes) when
    the daemon that started this worker dies, even by SIGKILL.

    Acts only when ``env`` (default ``os.environ``) names the supervisor's pid
    (:data:`SUPERVISOR_PID_ENV`), i.e. for workers of
    ``swarmd --workers N``; a worker started by hand or by
    ``swarmd-worker@.service`` is left alone.  If that process is already gone
    (the parent pid differs) the worker exits at once (status 0): the daemon's
    restart starts fresh workers.  Returns whether the signal was armed (False
    off Linux or without the variable)."""
    env = os.environ if env is None else env
    want = env.get(SUPERVISOR_PID_ENV)
    if not want or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("worker: prctl(PR_SET_PDEATHSIG) failed (errno {}); it will outlive a killed daemon",
                       ctypes.get_errno())
        return False
    if os.getppid() != int(want):          # the daemon died before the signal was armed
        logger.warning("worker: the daemon that started it (pid {}) is gone; exiting", want)
        raise SystemExit(0)
    return True


def default_worker_name() -> str:
    """``<host>:<pid>``: the name of a worker started without ``--name``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(redis_url: str, config_path: str | None = None, burst: bool = False,
               name: str | None = None, data_dir: str | os.PathLike | None = None) -> int:
    """Run one worker until SIGTERM (or, with ``burst``, until the queues are empty).

    Listens on this site's resume queue, then :data:`swarmd.queue.QUEUES`
    in priority order (:func:`swarmd.queue.worker_queues`).
    ``data_dir``: where objective workspaces go (resolved by
    :func:`swarmd.paths.data_dir` when ``None``).  Returns an exit code (0
    ok).  Raises :class:`swarmd.config.ConfigError` for a bad config.
    """
    end_with_supervisor()
    config = load_config(config_path)
    register_config(config)  # the redactor masks the config's secrets and the Redis password everywhere
    register(redis_url)
    envelope.sweep()         # cgroups left by a worker that crashed (governor/envelope.py)
    connection = Redis.from_url(redis_url)
    wait_for_redis(connection)
    telemetry.setup("swarmd-worker")     # traces only when OTEL_* variables ask for them
    ctx = build_context(config, connection, resolve_data_dir(data_dir), name or default_worker_name())
    queues = worker_queues()
    worker = ContextWorker(queues, ctx, connection=connection, name=ctx.name)
    worker.max_connection_wait_time = MAX_RECONNECT_WAIT_S
    logger.info("worker {} listening on {} (data dir {}; context built once: model loaded once per process)",
                worker.name, ", ".join(queues), ctx.data_dir)
    try:
        # no RQ scheduler here: the daemon runs it (swarmd.daemon.recovery.promote_due_jobs)
        worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
    finally:
        ctx.close()
    return 0

