"""The daemon's scheduled learning-memory jobs (APScheduler, like :mod:`swarmd.daemon.report_jobs`).

* ``memory_audits`` every 5 s: writes the calibration audits workers pushed
  to Redis (:func:`swarmd.memory.audit.drain_audits`);
* ``memory_consolidate`` daily at ``memory.consolidate_at`` (local
  ``"HH:MM"``; unset = only ``swarmctl memory consolidate``):
  :func:`swarmd.memory.consolidate.consolidate`.  Rescheduled on a config reload.
"""

from __future__ import annotations

from loguru import logger

from swarmd.memory.audit import drain_audits
from swarmd.memory.consolidate import consolidate

AUDIT_DRAIN_S = 5


def schedule_consolidation(scheduler, daemon) -> None:
    """(Re)schedule the daily consolidation at ``daemon.config.memory.consolidate_at``, or remove it."""
    at = daemon.config.memory.consolidate_at
    if at:
        hour, minute = (int(x) for x in at.split(":"))
        scheduler.add_job(lambda: run_consolidation(daemon), "cron", hour=hour, minute=minute,
                          id="memory_consolidate", max_instances=1, coalesce=True, misfire_grace_time=3600,
                          replace_existing=True)
        logger.info("memory consolidation daily at {} local time", at)
    elif scheduler.get_job("memory_consolidate") is not None:
        scheduler.remove_job("memory_consolidate")
        logger.info("memory consolidation off (memory.consolidate_at unset)")


def run_consolidation(daemon):
    """One consolidation of the daemon's memory (logged; a failure is logged, never raised)."""
    try:
        return consolidate(daemon.memory, daemon.config)
    except Exception:
        logger.exception("memory consolidation failed")
        return None


def register_memory_jobs(scheduler, daemon) -> None:
    """Add the audit drain and the daily consolidation to ``scheduler``."""
    def drain_calibration_audits():   # failures logged by Daemon.guarded; the audits stay in Redis
        drain_audits(daemon.memory, daemon.redis)

    scheduler.add_job(daemon.guarded(drain_calibration_audits), "interval", seconds=AUDIT_DRAIN_S, id="memory_audits", max_instances=1, coalesce=True)
    schedule_consolidation(scheduler, daemon)
