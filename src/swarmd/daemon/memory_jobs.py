"""The daemon's scheduled learning-memory jobs (APScheduler, like :mod:`swarmd.daemon.report_jobs`).

* ``memory_audits`` every 5 s: writes the calibration audits workers pushed
  to Redis (:func:`swarmd.memory.audit.drain_audits`);
* ``memory_consolidate`` daily at ``memory.consolidate_at`` (local
  ``"HH:MM"``; unset = only ``swarmctl memory consolidate``):
  :func:`swarmd.memory.consolidate.consolidate`.  Rescheduled on a config reload;
* ``memory_index`` every 10 s, when retrieved examples use vectors
  (``memory.retrieval_examples`` > 0, ``memory.retrieval_mode`` not ``bm25``):
  embeds new verified records into the vector index
  (:meth:`swarmd.memory.retrieval.Retriever.sync_all`; one query when
  nothing changed).  The daemon is the index's only writer; workers reload
  the file and retrieve the new records from their next job.  The
  consolidation syncs it too, after pruning.
"""

from __future__ import annotations

import threading

from loguru import logger

from swarmd.memory.audit import drain_audits
from swarmd.memory.consolidate import consolidate
from swarmd.memory.gate import open_retriever

AUDIT_DRAIN_S = 5
INDEX_SYNC_S = 10


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
        return consolidate(daemon.memory, daemon.config, daemon.vectors.retriever())
    except Exception:
        logger.exception("memory consolidation failed")
        return None


class VectorSync:
    """The daemon's vector-index upkeep: a :class:`~swarmd.memory.retrieval.Retriever`
    over ``daemon.memory``, opened on first use and again when a config
    reload changed the retrieval settings; none when the configuration
    retrieves no examples or by BM25 alone (nothing to embed)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self._key = None
        self._retriever = None
        self._lock = threading.RLock()

    def retriever(self):
        """The retriever for the current configuration, or ``None``."""
        settings = self.daemon.config.memory
        key = (settings.retrieval_examples > 0 and settings.retrieval_mode != "bm25", settings.qdrant_url)
        with self._lock:
            if key != self._key:
                self.close()
                self._retriever = open_retriever(self.daemon.config, self.daemon.memory) if key[0] else None
                self._key = key
            return self._retriever

    def sync(self) -> int:
        """Embed the verified records the vector index lacks; returns how many (0 without vectors)."""
        retriever = self.retriever()
        added = retriever.sync_all() if retriever is not None else 0
        if added:
            logger.info("memory: {} verified record(s) embedded into the vector index", added)
        return added

    def close(self) -> None:
        """Flush and close the index (opened again on the next use)."""
        with self._lock:
            if self._retriever is not None:
                self._retriever.close()
            self._retriever, self._key = None, None


def register_memory_jobs(scheduler, daemon) -> None:
    """Add the audit drain, the vector-index sync and the daily consolidation to ``scheduler``."""
    def drain_calibration_audits():   # failures logged by Daemon.guarded; the audits stay in Redis
        drain_audits(daemon.memory, daemon.redis)

    scheduler.add_job(daemon.guarded(drain_calibration_audits), "interval", seconds=AUDIT_DRAIN_S, id="memory_audits", max_instances=1, coalesce=True)
    def sync_vector_index():          # failures logged by Daemon.guarded; retried at the next run
        daemon.vectors.sync()

    scheduler.add_job(daemon.guarded(sync_vector_index), "interval", seconds=INDEX_SYNC_S, id="memory_index",
                      max_instances=1, coalesce=True)
    schedule_consolidation(scheduler, daemon)
