"""``swarmd``: run the daemon (and optionally its workers), or one worker alone.

    swarmd [--workers N] [--config FILE] [--data-dir DIR] [--redis-url URL]
    swarmd worker [--config FILE] [--redis-url URL]

Redis: ``--redis-url``, else ``$REDIS_URL``, else ``daemon.redis_url`` in the
config, else a server answering on localhost:6379, else the daemon starts its
own ``redis-server`` (append-only file in the data dir, loopback only) and
stops it on exit.  The URL in use is written to ``<data-dir>/redis.url`` so
``swarmctl --data-dir DIR`` finds it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from loguru import logger

from swarmd.config import ConfigError, load_config
from swarmd.paths import data_dir as resolve_data_dir


def setup_logging(data_dir: Path, log_cfg) -> Path:
    """loguru to stderr and to the daemon log file (rotation/retention from config)."""
    path = Path(log_cfg.path)
    path = path if path.is_absolute() else data_dir / path
    logger.remove()
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {process} | {message}"
    logger.add(sys.stderr, level=log_cfg.level, format=fmt)
    logger.add(str(path), level=log_cfg.level, format=fmt, rotation=log_cfg.rotation,
               retention=log_cfg.retention, enqueue=True)
    return path


def run_daemon(args: argparse.Namespace) -> int:
    """Start Redis (if needed), the daemon and ``args.workers`` workers; block until stopped."""
    from redis import Redis

    from swarmd.daemon.notify import Notifier
    from swarmd.daemon.redis_server import RedisUnavailable, ensure_redis, mask_url, write_url_file
    from swarmd.daemon.service import Daemon
    from swarmd.daemon.supervisor import Supervisor

    config = load_config(args.config)
    config_path = os.path.abspath(config.source) if config.source else None
    data = resolve_data_dir(args.data_dir)
    log_path = setup_logging(data, config.daemon.log)
    notifier = Notifier()
    url = args.redis_url or os.environ.get("REDIS_URL") or config.daemon.redis_url
    try:
        handle = ensure_redis(url, data)
    except RedisUnavailable as exc:
        logger.error("{}", exc)
        return 3
    write_url_file(data, handle.url)
    logger.info("swarmd starting: data dir {}, log {}, Redis {}{}", data, log_path, mask_url(handle.url),
                " (started by swarmd)" if handle.started else "")
    redis = Redis.from_url(handle.url)
    daemon = Daemon(config, config_path, data, redis, notifier)
    daemon.install_signal_handlers()
    supervisor = None
    if args.workers:
        supervisor = Supervisor(args.workers, handle.url, config_path, data, data_dir=data,
                                grace_s=config.daemon.job_timeout_s)
        supervisor.start()
        daemon.on_reload.append(supervisor.restart_all)
    try:
        return daemon.run()
    finally:
        notifier.stopping()
        logger.info("swarmd stopping: intake stopped")
        if supervisor:
            supervisor.stop()
        daemon.close()
        handle.stop()
        logger.info("swarmd stopped")
        logger.complete()


def run_worker_cmd(args: argparse.Namespace) -> int:
    """``swarmd worker``: one worker in the foreground."""
    from swarmd.daemon.redis_server import read_url_file
    from swarmd.workers.main import run_worker

    url = args.redis_url or os.environ.get("REDIS_URL")
    if not url and args.data_dir:
        url = read_url_file(Path(args.data_dir))
    if not url:
        url = load_config(args.config).daemon.redis_url
    if not url:
        print("swarmd worker: no Redis; give --redis-url, set REDIS_URL, or --data-dir of a running daemon",
              file=sys.stderr)
        return 2
    return run_worker(url, args.config, burst=args.burst, data_dir=args.data_dir)


def build_parser() -> argparse.ArgumentParser:
    """The ``swarmd`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="llm_config.yaml (default: $SWARMD_CONFIG, ./llm_config.yaml)")
    common.add_argument("--data-dir", help="data directory (default: $SWARMD_DATA_DIR, $STATE_DIRECTORY "
                                           "under systemd, else ~/.local/share/swarmd)")
    common.add_argument("--redis-url", help="Redis to use (default: $REDIS_URL, config, localhost, or its own)")
    parser = argparse.ArgumentParser(
        prog="swarmd", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The swarmd daemon: reads objectives pushed with `swarmctl submit`, dispatches them to "
                    "RQ workers that route every LLM call through cheap tiers first, and persists results "
                    "and costs in <data-dir>/memory.db. Logs to <data-dir>/daemon_hybrid.log.",
        epilog="examples:\n  swarmd --workers 1                 # daemon + one worker (+ its own Redis if none)\n"
               "  swarmd worker --redis-url redis://host:6379/0   # an extra worker on another host\n"
               "signals: SIGTERM stops intake and exits cleanly (running jobs finish); SIGHUP reloads the\n"
               "  config and restarts the supervised workers, each after its current job")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="also start and supervise N local worker processes (default 0)")
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", parents=[common], help="run one worker alone (e.g. on another host)")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``swarmd``; returns the exit code (2 bad input/config, 3 no Redis)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 0) < 0:
        print("swarmd: --workers must be >= 0", file=sys.stderr)
        return 2
    try:
        return run_worker_cmd(args) if args.command == "worker" else run_daemon(args)
    except ConfigError as exc:
        print(f"swarmd: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
