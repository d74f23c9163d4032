"""The swarmd daemon: one :class:`Daemon` composing admission, events and recovery.

* :mod:`swarmd.daemon.streams` — both streams read under consumer groups;
  entries left pending by a killed daemon claimed at start-up.
* :mod:`swarmd.daemon.admission` — objectives validated, refused or enqueued.
* :mod:`swarmd.daemon.events` — worker events persisted once, then acknowledged.
* :mod:`swarmd.daemon.recovery` — RQ upkeep: abandoned, lost, scheduled and failed jobs.

Periodic work (heartbeat, RQ upkeep, approval timeouts, reports, memory jobs)
runs on an APScheduler ``BackgroundScheduler``; the main loop reads both
streams and, when both are empty, blocks until either has a new entry.  After
a read that was not full it lets entries gather for ``daemon.coalesce_ms``.
While Redis or the store fails, the main loop retries with a backoff doubling
from :data:`RETRY_START_S` to :data:`RETRY_MAX_S` seconds, one log line per retry.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.config import Config, load_config
from swarmd.memory.records import Memory
from swarmd.paths import db_path
from swarmd.router.reach import model_problems
from swarmd.daemon.admission import Admission
from swarmd.daemon.events import Events
from swarmd.daemon.memory_jobs import VectorSync, register_memory_jobs, schedule_consolidation
from swarmd.daemon.recovery import LOST_AFTER_S, Recovery
from swarmd.daemon.report_jobs import register_report_jobs, schedule_daily_report
from swarmd.daemon.streams import TRANSIENT, StreamReader, ensure_group
from swarmd.daemon.store import Store

#: Seconds before the first retry after Redis or the store failed; doubles up to :data:`RETRY_MAX_S`.
RETRY_START_S = 0.5
RETRY_MAX_S = 8.0
#: Seconds between two probes of the configured models (:meth:`Daemon.probe_models`): an Ollama
#: started later is seen by ``swarmctl submit`` within this long.
MODEL_PROBE_S = 30.0


class Backoff:
    """Delays between retries of a failing operation: ``start_s``, doubling up
    to ``max_s`` seconds, back to ``start_s`` after :meth:`ok`.  Logs one
    error line per failure and one line when it works again."""

    def __init__(self, start_s: float = RETRY_START_S, max_s: float = RETRY_MAX_S):
        self.start_s, self.max_s = start_s, max_s
        self.delay_s, self.failures, self.since = start_s, 0, 0.0

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failure of ``what``; returns the seconds to wait before retrying."""
        if not self.failures:
            self.since = time.monotonic()
        self.failures += 1
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        logger.error("{} failed ({}: {}); nothing is acknowledged, retrying in {:.1f}s (failure {} in a row)",
                     what, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", delay, self.failures)
        return delay

    def ok(self, what: str) -> None:
        """The operation worked: log the recovery (if it had failed) and reset the delay."""
        if self.failures:
            logger.warning("{} works again after {} failure(s) over {:.1f}s", what, self.failures,
                           time.monotonic() - self.since)
        self.delay_s, self.failures = self.start_s, 0


def day_start(now: float | None = None) -> float:
    """Unix time of the start of the current UTC day: the budget's daily
    period (``swarmd.costs.budgets``), so status's "today" is the day the
    daily cap counts."""
    t = time.time() if now is None else now
    return float(t - t % 86400)


class Daemon(StreamReader, Admission, Events, Recovery):
    """One daemon over one Redis and one SQLite store.

    ``config``: re-read from :attr:`Config.source_path` on SIGHUP.  ``data_dir``:
    where the store, the log and the Redis URL file live.  ``redis``: a client
    for the Redis in use.  ``notifier``: a :class:`swarmd.daemon.notify.Notifier`
    (or ``None``).  Leaves the process environment alone: the data
    directory reaches the workers it starts as ``--data-dir``
    (:class:`swarmd.daemon.supervisor.Supervisor`).
    """

    def __init__(self, config: Config, data_dir: Path, redis: Redis, notifier=None, consumer: str | None = None):
        self.config, self.data_dir = config, data_dir
        self.redis = redis
        self.notifier = notifier
        self.consumer = consumer or f"{socket.gethostname()}"
        self.store = Store(db_path(data_dir, config.storage.db))
        self.memory = Memory(db_path(data_dir, config.storage.db))
        #: the vector index of retrieved examples, kept up to date by the memory jobs
        self.vectors = VectorSync(self)
        self.governor, self.policy_error = self._load_governor(config)
        self.queues = {name: Q.queue(name, redis) for name in Q.QUEUES}
        self.started_at = time.time()
        self._stop = threading.Event()
        self._reload = threading.Event()
        #: called after each successful config reload (``swarmd --workers N``
        #: adds the supervisor's warm restart of its workers)
        self.on_reload: list = []
        self.scheduler = BackgroundScheduler(daemon=True)
        #: streams whose entries this consumer read but did not acknowledge (re-read from id 0)
        self._redo: set[str] = set()
        self._backoff = Backoff()
        self._failing: set[str] = set()   # periodic jobs failing on Redis right now
        self._lost_seen: dict[str, float] = {}   # requeue_lost: job id -> when first seen lost
        #: models of the config that cannot answer from here (:func:`swarmd.router.reach.model_problems`),
        #: refreshed every MODEL_PROBE_S seconds and published in the heartbeat for ``swarmctl submit``
        self.model_problems: dict[str, str] | None = None
        ensure_group(redis, K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)
        ensure_group(redis, Q.EVENT_STREAM, Q.EVENT_GROUP)

    # ------------------------------------------------------------------ signals
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: stop intake and exit cleanly; SIGHUP: reload the config."""
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def stop(self) -> None:
        """Ask the main loop to finish (safe from a signal handler)."""
        self._stop.set()

    def reload_config(self) -> None:
        """Re-read the config file; on error keep the old one and log why."""
        if self.notifier:
            self.notifier.reloading()
        try:
            new = load_config(self.config.source_path)
        except Exception as exc:
            logger.error("config reload failed, keeping the old config: {}", exc)
        else:
            old, self.config = self.config, new
            logger.info("config reloaded from {}", self.config.source)
            self.guarded(self.probe_models)()       # the new config's models, for submit's check
            if self.scheduler.running:
                schedule_daily_report(self.scheduler, self)
                schedule_consolidation(self.scheduler, self)
            if new.metrics.port != old.metrics.port:
                logger.warning("metrics.port changed ({} -> {}): takes effect when swarmd restarts",
                               old.metrics.port, new.metrics.port)
            for hook in self.on_reload:
                try:
                    hook()
                except Exception:
                    logger.exception("config reload hook failed")
        self.governor, self.policy_error = self._load_governor(self.config)
        if self.notifier:
            self.notifier.ready()

    def probe_models(self) -> None:
        """Which models of the config cannot answer from here (no API key, no
        Ollama host answering: :func:`swarmd.router.reach.model_problems`),
        for the heartbeat; a change is logged."""
        problems = model_problems(self.config)
        if problems != self.model_problems:
            if problems:
                logger.warning("models that cannot answer now: {}", "; ".join(f"{k}: {v}" for k, v in problems.items()))
            elif self.model_problems:
                logger.info("every configured model can answer again")
        self.model_problems = problems

    def heartbeat(self) -> None:
        """Publish liveness, counts and today's spend for ``swarmctl status``."""
        counts = self.store.counts()
        spend, by_tier = self.store.spend_since(day_start())
        ttl = max(5, int(self.config.daemon.heartbeat_s * 5))
        pipe = self.redis.pipeline()
        pipe.hset(K.HEARTBEAT, mapping={
            "pid": os.getpid(), "host": socket.gethostname(), "started_at": self.started_at, "ts": time.time(),
            "interval_s": self.config.daemon.heartbeat_s, "counts": json.dumps(counts),
            "spend_today_usd": spend, "by_tier_today": json.dumps(by_tier),
            **({"model_problems": json.dumps(self.model_problems)} if self.model_problems is not None else {})})
        pipe.expire(K.HEARTBEAT, ttl)
        pipe.execute()
        if self.notifier:
            self.notifier.status(" ".join(f"{k}={v}" for k, v in counts.items()) + f" spend_today=${spend:.4f}")

    def guarded(self, fn):
        """``fn`` for the scheduler: exceptions logged, never raised.  A Redis
        connection failure is logged once when it starts and once when ``fn``
        works again (the main loop logs each retry), not on every run."""
        name = fn.__name__

        def run():
            try:
                fn()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if name not in self._failing:
                    self._failing.add(name)
                    logger.warning("periodic job {} cannot reach Redis ({}); it keeps trying", name, exc)
            except Exception:
                logger.exception("periodic job {} failed", name)
            else:
                if name in self._failing:
                    self._failing.discard(name)
                    logger.info("periodic job {} reaches Redis again", name)
        return run

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        """Run until :meth:`stop`; returns the exit code (0)."""
        self.scheduler.add_job(self.guarded(self.heartbeat), "interval", seconds=self.config.daemon.heartbeat_s,
                               id="heartbeat", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.guarded(self.probe_models), "interval", seconds=MODEL_PROBE_S, id="probe_models",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.guarded(self.sweep_failed), "interval", seconds=5, id="sweep_failed",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.guarded(self.reap_abandoned), "interval", seconds=2, id="reap_abandoned",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.guarded(self.requeue_lost), "interval", seconds=LOST_AFTER_S / 2,
                               id="requeue_lost", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.guarded(self.promote_scheduled), "interval", seconds=1, id="promote_scheduled",
                               max_instances=1, coalesce=True)
        expiry_s = max(0.5, min(5.0, self.config.governor.approval_timeout_s / 2))
        self.scheduler.add_job(self.guarded(self.expire_approvals), "interval", seconds=expiry_s,
                               id="expire_approvals", max_instances=1, coalesce=True)
        register_report_jobs(self.scheduler, self)   # daily cost report, metrics
        register_memory_jobs(self.scheduler, self)   # calibration audits, daily consolidation
        self.guarded(self.probe_models)()     # before the first heartbeat: submit checks against it
        self.scheduler.start()
        try:
            self.heartbeat()
            self.reclaim()
        except TRANSIENT as exc:   # Redis or the store down at start-up: the main loop retries
            logger.error("start-up reclaim failed ({}: {}); pending entries are read again when it works",
                         type(exc).__name__, exc)
            self._redo.update(stream for stream, _group in self._READS)
        if self.notifier:
            self.notifier.ready()
        logger.info("swarmd intake running (pid {})", os.getpid())
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self.reload_config()
            if self.notifier:
                self.notifier.watchdog()
            try:
                batches = self.read_streams()
                self.handle(batches)
            except TRANSIENT as exc:
                where = "Redis" if isinstance(exc, RedisError) else f"the store {self.store.path}"
                self._stop.wait(self._backoff.failed(f"reading or handling the streams ({where})", exc))
                continue
            self._backoff.ok("reading and handling the streams")
            if batches and all(len(entries) < self.READ_COUNT for _stream, entries in batches):
                self._stop.wait(self.config.daemon.coalesce_ms / 1000)   # let the next batch gather
        return 0

    def close(self) -> None:
        """Stop periodic jobs, persist what is left, close the store."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        try:
            self.drain_events()
            self.heartbeat()
            self.redis.delete(K.HEARTBEAT)
        except Exception:
            logger.exception("final drain failed")
        self.store.close()
        self.vectors.close()
        self.memory.close()
