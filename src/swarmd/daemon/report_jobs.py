"""The daemon's scheduled reporting jobs: the daily cost report and the metrics refresh.

:func:`register_report_jobs` is called once by ``Daemon.run()`` with its APScheduler
``BackgroundScheduler``:

* ``reports.daily_at`` (local ``"HH:MM"``) → job ``daily_cost_report``: the report of the 24
  hours before it (:mod:`swarmd.costs.report`), Markdown + PNG in ``<data dir>/<reports.dir>/``
  and one log line;
* ``metrics.port`` (not null) → ``/metrics`` on 127.0.0.1:port and job ``metrics_refresh``
  every ``metrics.refresh_s`` seconds (:mod:`swarmd.daemon.metrics`).

Both are read at start-up: a change takes effect at the next daemon start.
"""

from __future__ import annotations

import time
from pathlib import Path

from loguru import logger

from swarmd.costs.budgets import Budget
from swarmd.costs.report import build_report, summary_line, write_report
from swarmd.daemon.metrics import DaemonMetrics


def report_dir(daemon) -> Path:
    """``reports.dir`` of the daemon's config, under its data dir unless absolute."""
    p = Path(daemon.config.reports.dir).expanduser()
    return p if p.is_absolute() else Path(daemon.data_dir) / p


def daily_report(daemon, now: float | None = None) -> tuple[Path, Path]:
    """Write the report of the 24 hours before ``now`` and log its summary
    line; returns (Markdown path, PNG path)."""
    now = time.time() if now is None else now
    report = build_report(daemon.store.path, daemon.config, now - 86400, now)
    md, png = write_report(report, report_dir(daemon), "24h")
    logger.info(summary_line(report, md))
    return md, png


def schedule_daily_report(scheduler, daemon) -> None:
    """(Re)schedule the daily cost report at ``reports.daily_at`` (local time)
    of ``daemon.config``, or remove it when that is unset. Called at start-up
    and on each config reload (SIGHUP)."""
    config = daemon.config
    if config.reports.daily_at:
        hour, minute = (int(x) for x in config.reports.daily_at.split(":"))
        def daily_cost_report():   # failures logged by Daemon.guarded
            daily_report(daemon)

        scheduler.add_job(daemon.guarded(daily_cost_report), "cron", hour=hour,
                          minute=minute, id="daily_cost_report", max_instances=1, coalesce=True,
                          misfire_grace_time=3600, replace_existing=True)
        logger.info("daily cost report at {} local time -> {}", config.reports.daily_at, report_dir(daemon))
    elif scheduler.get_job("daily_cost_report") is not None:
        scheduler.remove_job("daily_cost_report")
        logger.info("daily cost report off (reports.daily_at unset)")


def register_report_jobs(scheduler, daemon) -> dict:
    """Add the daily cost report and the metrics refresh to ``scheduler`` and
    start the metrics server (see the module docstring).  ``daemon``: a
    :class:`swarmd.daemon.service.Daemon` (uses ``config``, ``data_dir``,
    ``store``, ``redis``).  Returns ``{"metrics": DaemonMetrics}`` when
    metrics are on, else ``{}``.  A metrics port that cannot be bound is
    logged and metrics stay off; the daemon runs on."""
    config = daemon.config
    out: dict = {}
    schedule_daily_report(scheduler, daemon)
    if config.metrics.port is not None:
        try:
            metrics = DaemonMetrics(daemon.store.path, daemon.redis, daemon.store, Budget(daemon.redis, config),
                                    config=config)
            metrics.serve(config.metrics.port)
        except OSError as exc:
            logger.error("metrics off: cannot serve on 127.0.0.1:{}: {}", config.metrics.port, exc)
            return out
        def metrics_refresh():   # failures logged by Daemon.guarded
            metrics.refresh()

        scheduler.add_job(daemon.guarded(metrics_refresh), "interval", seconds=config.metrics.refresh_s,
                          id="metrics_refresh", max_instances=1, coalesce=True, replace_existing=True)
        out["metrics"] = metrics
    return out
