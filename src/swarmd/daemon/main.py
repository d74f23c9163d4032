"""Start-up of the daemon process: logging, Redis, the daemon loop and its supervised workers.

The command line (``swarmd``, ``python -m swarmd``) is :mod:`swarmd.cli.daemon`;
it resolves the Redis URL (:func:`swarmd.cli.common.redis_url`) and calls
:func:`run_daemon`.  A configured Redis that answers without a password is
refused unless ``daemon.allow_unauthenticated_redis``; without a URL the
daemon starts its own ``redis-server`` (unix socket and append-only file in
the data dir; never a Redis merely found on localhost) and stops it on exit.  The URL in use is written to
``<data-dir>/redis.url`` so ``swarmctl --data-dir DIR`` finds it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from loguru import logger
from redis import Redis

from swarmd.config import load_config
from swarmd.daemon.notify import Notifier
from swarmd.daemon.redis_server import RedisUnavailable, ensure_redis, mask_url, write_url_file
from swarmd.daemon.service import Daemon
from swarmd.daemon.supervisor import Supervisor
from swarmd.errors import EXIT_UNREACHABLE
from swarmd.governor.secrets import register, register_config
from swarmd.paths import data_dir as resolve_data_dir
from swarmd.paths import db_path


def setup_logging(data_dir: Path, log_cfg) -> Path:
    """loguru to stderr and to the daemon log file (``daemon.log`` of the config:
    path under ``data_dir`` unless absolute, level, rotation, retention); returns its path."""
    path = db_path(data_dir, log_cfg.path)
    logger.remove()
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {process} | {message}"
    logger.add(sys.stderr, level=log_cfg.level, format=fmt)
    logger.add(str(path), level=log_cfg.level, format=fmt, rotation=log_cfg.rotation,
               retention=log_cfg.retention, enqueue=True)
    return path


def run_daemon(config_path: str | None, data_dir: str | None, redis_url: str | None, workers: int) -> int:
    """Start Redis (if needed), the daemon and ``workers`` supervised workers;
    block until stopped (SIGTERM); returns the exit code (3: no Redis, or
    swarmd's own redis-server died while it ran).

    ``redis_url``: the Redis to use, ``None`` for "start our own" (:func:`swarmd.daemon.redis_server.ensure_redis`); the
    command line resolves it (:func:`swarmd.cli.common.redis_url`).  Raises
    :class:`~swarmd.config.ConfigError` for a bad config.
    """
    config = load_config(config_path)
    register_config(config)  # the redactor masks its secrets in every log line, trace and result
    if redis_url:
        register(redis_url)
    config_path = os.path.abspath(config.source) if config.source else None
    data = resolve_data_dir(data_dir)
    log_path = setup_logging(data, config.daemon.log)
    notifier = Notifier()
    try:
        handle = ensure_redis(redis_url, data, allow_unauthenticated=config.daemon.allow_unauthenticated_redis)
    except RedisUnavailable as exc:
        logger.error("{}", exc)
        return EXIT_UNREACHABLE
    register(handle.url)  # its password, if any, is masked everywhere
    write_url_file(data, handle.url)
    logger.info("swarmd starting: data dir {}, log {}, Redis {}{}", data, log_path, mask_url(handle.url),
                " (started by swarmd)" if handle.started else "")
    redis = Redis.from_url(handle.url)
    daemon = Daemon(config, config_path, data, redis, notifier)
    daemon.install_signal_handlers()
    redis_died: list[int] = []

    def on_redis_exit(code: int) -> None:   # systemd's Restart=on-failure then starts both again
        logger.error("swarmd's own redis-server exited with code {} (killed?); stopping swarmd so that it is "
                     "restarted together with its Redis, from the append-only file", code)
        redis_died.append(code)
        daemon.stop()

    handle.watch(on_redis_exit)
    supervisor = None
    if workers:
        supervisor = Supervisor(workers, handle.url, config_path, data, data_dir=data,
                                grace_s=config.daemon.job_timeout_s, on_exit=daemon.worker_died)
        supervisor.start()
        daemon.on_reload.append(supervisor.restart_all)
    try:
        code = daemon.run()
        return EXIT_UNREACHABLE if redis_died else code
    finally:
        notifier.stopping()
        logger.info("swarmd stopping: intake stopped")
        if supervisor:
            supervisor.stop()
        daemon.close()
        handle.stop()
        logger.info("swarmd stopped")
        logger.complete()
