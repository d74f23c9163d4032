"""Start-up of the daemon process: logging, Redis, the daemon loop and its supervised workers.

The command line (``swarmd``, ``python -m swarmd``) is :mod:`swarmd.cli.daemon`;
it resolves the Redis URL (:func:`swarmd.cli.common.redis_url`) and calls
:func:`run_daemon`.  A configured Redis that answers without a password is
refused unless ``daemon.allow_unauthenticated_redis``; without a URL the
daemon starts its own ``redis-server`` (unix socket and append-only file in
the data dir; never a Redis merely found on localhost) and stops it on exit.  The URL in use is written to
``<data-dir>/redis.url`` and the config's path to ``<data-dir>/config.path``, so ``swarmctl --data-dir
DIR`` finds both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from loguru import logger
from redis import Redis

from swarmd.config import load_config
from swarmd.daemon.notify import Notifier
from swarmd.daemon.redis_server import RedisUnavailable, ensure_redis, mask_url, write_url_file
from swarmd.daemon.service import Daemon
from swarmd.daemon.supervisor import Supervisor, available_cores, default_workers, oversubscription
from swarmd.errors import EXIT_UNREACHABLE
from swarmd.governor.secrets import register, register_config
from swarmd.logs import configure as configure_logs
from swarmd.paths import data_dir as resolve_data_dir
from swarmd.paths import db_path, write_config_path


def stderr_is_journal() -> bool:
    """True when stderr is connected to systemd's journal: ``$JOURNAL_STREAM``
    (``DEVICE:INODE``, set by systemd for a service's output) names stderr's
    file (systemd.exec(5): a variable inherited by a child whose stderr
    goes elsewhere does not count)."""
    try:
        device, inode = (int(x) for x in os.environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def setup_logging(data_dir: Path, log_cfg, verbose: int = 0) -> Path:
    """loguru to the daemon log file (``daemon.log`` of the config: path under
    ``data_dir`` unless absolute, level, rotation, retention), and to stderr
    only with ``verbose`` (``-v``; :func:`swarmd.logs.configure`) or when
    stderr is systemd's journal (:func:`stderr_is_journal`); RQ's
    :mod:`logging` records go the same way.  Returns the file's path."""
    path = db_path(data_dir, log_cfg.path)
    if stderr_is_journal():                 # under systemd: keep the log in the journal too
        verbose = max(verbose, 1)
    configure_logs(verbose, path, log_cfg.level, rotation=log_cfg.rotation, retention=log_cfg.retention,
                   enqueue=True)
    return path


def run_daemon(config_path: str | None, data_dir: str | None, redis_url: str | None, workers: int | None,
               cores: int | None = None, verbose: int = 0, services: Sequence = ()) -> int:
    """Start Redis (if needed), the daemon and ``workers`` supervised workers
    (``None``: :func:`~swarmd.daemon.supervisor.default_workers` for ``cores``,
    default :func:`~swarmd.daemon.supervisor.available_cores`; more than the
    cores fit is started, with a warning in the log and on stderr);
    block until stopped (SIGTERM); returns the exit code.  Log lines go to
    the log file, and to stderr only with ``verbose`` (``-v``); start-up
    warnings and fatal errors are printed on stderr as well (3: no Redis, or
    swarmd's own redis-server died while it ran).

    ``redis_url``: the Redis to use, ``None`` for "start our own" (:func:`swarmd.daemon.redis_server.ensure_redis`); the
    command line resolves it (:func:`swarmd.cli.common.redis_url`).  Raises
    :class:`~swarmd.config.ConfigError` for a bad config.  ``services``: objects with
    ``start()``/``stop()`` (and optionally ``reload(config)``, called after each SIGHUP reload)
    run beside the daemon (the HTTP API), started once logging is set up and before Redis,
    stopped last; an error from ``start()`` propagates.
    """
    config = load_config(config_path)
    register_config(config)  # the redactor masks its secrets in every log line, trace and result
    if redis_url:
        register(redis_url)
    config_path = str(config.source_path) if config.source_path else None   # the workers' --config
    data = resolve_data_dir(data_dir)
    log_path = setup_logging(data, config.daemon.log, verbose)
    cores = cores or available_cores()
    workers = default_workers(config, cores) if workers is None else workers
    crowded = oversubscription(config, workers, cores)
    if crowded:
        logger.warning("{}", crowded)
        print(f"swarmd: warning: {crowded}", file=sys.stderr, flush=True)
    if workers == 0:
        idle = ("swarmd starts no worker (--workers 0): objectives stay queued until a worker runs "
                "(`swarmd --workers N`, or `swarmd worker` here or on another host)")
        logger.warning("{}", idle)
        print(f"swarmd: warning: {idle}", file=sys.stderr, flush=True)
    started: list = []
    try:
        for service in services:
            service.start()
            started.append(service)
        return _serve(config, config_path, data, log_path, redis_url, workers, cores, started)
    finally:
        for service in reversed(started):
            service.stop()


def _serve(config, config_path: str | None, data: Path, log_path: Path, redis_url: str | None, workers: int,
           cores: int, services: Sequence = ()) -> int:
    """:func:`run_daemon` once logging and the services are up: Redis, the daemon loop and
    the supervised workers, until stopped; returns the exit code.  A service with a
    ``reload(config)`` method gets the daemon's new config after each SIGHUP reload."""
    notifier = Notifier()
    try:
        handle = ensure_redis(redis_url, data, allow_unauthenticated=config.daemon.allow_unauthenticated_redis)
    except RedisUnavailable as exc:
        logger.error("{}", exc)
        print(f"swarmd: error: {exc}", file=sys.stderr, flush=True)   # the log is not on the terminal
        return EXIT_UNREACHABLE
    register(handle.url)  # its password, if any, is masked everywhere
    write_url_file(data, handle.url)
    write_config_path(data, config_path)     # swarmctl --data-dir DATA then uses the same config
    logger.info("swarmd starting: data dir {}, log {}, Redis {}{}, {} worker(s) on {} cores", data, log_path,
                mask_url(handle.url), " (started by swarmd)" if handle.started else "", workers, cores)
    redis = Redis.from_url(handle.url)
    daemon = Daemon(config, data, redis, notifier)
    daemon.install_signal_handlers()
    for service in services:
        if hasattr(service, "reload"):      # the HTTP API serves the reloaded config too
            daemon.on_reload.append(lambda service=service: service.reload(daemon.config))
    redis_died: list[int] = []

    def on_redis_exit(code: int) -> None:   # systemd's Restart=on-failure then starts both again
        message = (f"swarmd's own redis-server exited with code {code} (killed?); stopping swarmd so that it is "
                   "restarted together with its Redis, from the append-only file")
        logger.error("{}", message)
        print(f"swarmd: error: {message}", file=sys.stderr, flush=True)
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
