"""The swarmd daemon: admission, dispatch, result persistence, heartbeat.

Guarantees:

* **Nothing acknowledged is lost.**  Objectives are read from the stream with
  a consumer group and acknowledged (XACK) only after their RQ job is
  enqueued.  On start-up the daemon first re-reads entries left pending by a
  daemon that was killed (XAUTOCLAIM), so they are dispatched now.
* **Nothing is run twice by dispatch.**  The objective id is the RQ job id; an
  entry whose objective is already known to the store, or whose job already
  exists, is acknowledged without enqueuing again.
* **Every result is persisted once.**  Workers append ``started``/``finished``
  events to a second stream; the daemon writes each to SQLite in one
  transaction keyed by the event id, then acknowledges it.  Jobs that RQ gave
  up on (its failed-job registry) are persisted as ``failed``.
* **A final state is never overwritten** (``done``, ``unresolved``,
  ``failed``), in the store or in the Redis mirror
  (:func:`swarmd.constants.objective_key`): a later event for the objective
  (RQ failing the job of a worker that died after reporting ``done``) is
  logged as ignored.

Governor: at admission, objectives whose action or tags the policy's
``admission:`` section refuses end ``failed`` (reason ``refused:
<rule> <reason>``, audited) and never run; ``agent`` objectives are refused
while the policy file cannot be loaded.  Parked objectives
(``awaiting_approval``) older than ``governor.approval_timeout_s`` are
resolved as ``timeout`` (a deny) by a periodic job.  Audit rows arriving in
events are written to ``audit_log`` in the store.

Periodic work (heartbeat, failed-job sweep, approval timeouts, learning-memory
audits and consolidation: :mod:`swarmd.daemon.memory_jobs`) runs on an
APScheduler ``BackgroundScheduler``; the main loop reads each stream under its
own consumer group (:data:`swarmd.constants.OBJECTIVE_GROUP`,
:data:`swarmd.constants.EVENT_GROUP`) and, when both are empty, blocks until
either has a new entry.  After a read that was not full it lets entries
gather for ``daemon.coalesce_ms`` (20 ms) before reading again: on a busy
queue each read then carries many events, persisted in one SQLite
transaction, mirrored and acknowledged in one Redis pipeline and logged in
one line, rather than one event per round (``bench/queue.py``).

Faults: while Redis or the store fails, the main loop retries with a
backoff doubling from :data:`RETRY_START_S` to :data:`RETRY_MAX_S` seconds,
one log line per retry (periodic jobs: one line when they start failing and
one when they work again).  A batch that could not be handled is left
unacknowledged and read again from this consumer's pending entries (XREADGROUP
id ``0``) on the next pass, so objectives stay in Redis until the store has
them.  Entries that can never be handled (not JSON, not an objective, an event
of unknown shape) are logged, acknowledged and counted in
:data:`swarmd.constants.STATS` (``malformed_objectives``, ``malformed_events``;
``swarmctl status --json`` shows them); an objective entry naming a
well-formed id is not counted there: it ends a ``failed`` objective, in the
store and in Redis (reason ``rejected: ...``, :meth:`Daemon.admit_batch`).

Test failpoints (:mod:`swarmd.testing.failpoints`): ``after_read``, ``after_store``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from functools import partial
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from swarmd import constants as K
from swarmd.config import Config, load_config
from swarmd.governor import Decision, Governor, PolicyError, audit_row, load_policy
from swarmd.governor.audit import log_row
from swarmd.memory.outcomes import observe_finished
from swarmd.memory.records import Memory
from swarmd.objectives import FINAL_STATES, STATES, Objective, ObjectiveError, mirror_state, rejected_record, validate
from swarmd.paths import db_path
from swarmd.router.reach import model_problems
from swarmd.daemon.memory_jobs import VectorSync, register_memory_jobs, schedule_consolidation
from swarmd.daemon.recovery import abandon_jobs_of, promote_due_jobs
from swarmd.daemon.report_jobs import register_report_jobs, schedule_daily_report
from swarmd.store.objectives import Store
from swarmd.testing.failpoints import failpoint
from swarmd.workers import parking
from swarmd.workers.agent import AGENT_ACTION

#: Seconds before the first retry after Redis or the store failed; doubles up to :data:`RETRY_MAX_S`.
RETRY_START_S = 0.5
RETRY_MAX_S = 8.0
#: Failures that a retry can cure (the data is fine; Redis or the disk is not).
TRANSIENT = (RedisError, OSError, sqlite3.OperationalError)
#: Seconds an objective must be queued, and its job seen out of every queue, before
#: :meth:`Daemon.requeue_lost` puts the job back (a worker registers a job it took within milliseconds).
LOST_AFTER_S = 10.0
#: Seconds between two probes of the configured models (:meth:`Daemon.probe_models`): an Ollama
#: started later is seen by ``swarmctl submit`` within this long.
MODEL_PROBE_S = 30.0
#: Kinds of event-stream entries (:mod:`swarmd.workers.jobs`, :mod:`swarmd.workers.parking`).
EVENT_KINDS = ("started", "finished", "failed", "resolved")


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


def _text(value) -> str:
    """A stream entry id (bytes or str) as text, for log lines."""
    return value.decode() if isinstance(value, bytes) else str(value)


def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create consumer group ``group`` on ``stream`` (and the stream) if
    missing, reading from the stream's first entry.  Returns whether it was created."""
    try:
        redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


def day_start(now: float | None = None) -> float:
    """Unix time of the start of the current UTC day: the budget's daily
    period (``swarmd.costs.budgets``), so status's "today" is the day the
    daily cap counts."""
    t = time.time() if now is None else now
    return float(t - t % 86400)


class Daemon:
    """One daemon over one Redis and one SQLite store.

    ``config_path``: the config file (re-read on SIGHUP).  ``data_dir``:
    where the store, the log and the Redis URL file live.  ``redis``: a client
    for the Redis in use.  ``notifier``: a :class:`swarmd.daemon.notify.Notifier`
    (or ``None``).  Leaves the process environment alone: the data
    directory reaches the workers it starts as ``--data-dir``
    (:class:`swarmd.daemon.supervisor.Supervisor`).
    """

    def __init__(self, config: Config, config_path: str | None, data_dir: Path, redis: Redis,
                 notifier=None, consumer: str | None = None):
        self.config, self.config_path, self.data_dir = config, config_path, data_dir
        self.redis = redis
        self.notifier = notifier
        self.consumer = consumer or f"{socket.gethostname()}"
        self.store = Store(db_path(data_dir, config.storage.db))
        self.memory = Memory(db_path(data_dir, config.storage.db))
        #: the vector index of retrieved examples, kept up to date by the memory jobs
        self.vectors = VectorSync(self)
        self.governor, self.policy_error = self._load_governor(config)
        self.queues = {name: parking.queue(name, redis) for name in K.QUEUES}
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
        if ensure_group(redis, K.EVENT_STREAM, K.EVENT_GROUP):   # read from the start: covers the old group's
            redis.xgroup_destroy(K.EVENT_STREAM, K.LEGACY_EVENT_GROUP)   # pending entries (no-op if none)

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
            new = load_config(self.config_path)
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

    # ------------------------------------------------------------------ governor
    @staticmethod
    def _load_governor(config: Config) -> tuple[Governor | None, str | None]:
        """The governor for admission, or ``(None, why)`` when the policy file
        cannot be loaded (then ``agent`` objectives are refused)."""
        path = config.governor.policy_path(config.source)
        try:
            return Governor(load_policy(path)), None
        except PolicyError as exc:
            logger.warning("governor policy {} unusable; agent objectives will be refused: {}", path, exc)
            return None, str(exc).splitlines()[0]

    def admission(self, obj: Objective) -> Decision:
        """The governor's admission decision for one objective (see the module docstring)."""
        if self.governor is None:
            if obj.action == AGENT_ACTION:
                return Decision("deny", "governor.policy-unusable", self.policy_error or "no policy")
            return Decision("allow", "admission.default", "no policy; not an agent objective")
        return self.governor.admit(obj.action, obj.tags)

    def expire_approvals(self) -> None:
        """Resolve objectives parked longer than ``governor.approval_timeout_s`` as ``timeout`` (a deny)."""
        for oid in parking.expired(self.redis, self.config.governor.approval_timeout_s):
            try:
                parking.resolve(self.redis, oid, "timeout", "swarmd", self.config)
                logger.info("objective {} approval timed out; resumed with a deny", oid)
            except parking.NotParked:
                pass   # resolved by a human meanwhile

    # ------------------------------------------------------------------ intake
    def reclaim(self) -> int:
        """Handle entries of both streams that a previous daemon read but never
        acknowledged (XAUTOCLAIM); returns how many objectives were reclaimed."""
        events = self._claim(K.EVENT_STREAM, K.EVENT_GROUP, self._events)
        events += self.drain_events()     # finished while no daemon ran: persisted before any re-dispatch
        claimed = self._claim(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP, self.admit_batch)
        if claimed or events:
            logger.info("start-up: reclaimed {} objective(s) left pending and persisted {} worker event(s) "
                        "from before this daemon",
                        claimed, events)
        return claimed

    def _claim(self, stream: str, group: str, handle) -> int:
        claimed, start = 0, "0-0"
        while True:
            start, entries, *_ = self.redis.xautoclaim(stream, group, self.consumer, min_idle_time=0,
                                                       start_id=start, count=100)
            live = [(entry_id, fields) for entry_id, fields in entries if fields]
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:    # entries deleted from the stream while pending
                self.redis.xack(stream, group, *gone)
            if live:
                handle(live)
                claimed += len(live)
            if start in (b"0-0", "0-0"):
                return claimed

    def admit_batch(self, entries: list) -> None:
        """Validate stream entries, enqueue their jobs, then acknowledge them.

        One SQLite transaction and one Redis pipeline per batch: the queued
        rows, every job, the state mirrors and the XACK go out together, and
        the XACK only after the enqueue in the same pipeline.

        Every rejected objective ends visibly: one the policy's admission
        refuses is stored ``failed`` (reason ``refused: <rule> <reason>``,
        mirrored into Redis); an entry that fails :func:`validate` but names
        a well-formed id the store does not know is stored ``failed`` (reason
        ``rejected: <problems>``, at most 500 characters;
        :func:`~swarmd.objectives.rejected_record`) and its Redis hash set
        ``failed`` through :func:`mirror_state`, so ``swarmctl submit
        --wait``, ``show`` and ``status`` see it end as a failed objective.
        Only the entries that became no objective (no usable id, or a
        rejected one repeating another objective's id) are counted in
        ``malformed_objectives`` of :data:`swarmd.constants.STATS`.  A valid
        entry repeating the id of an objective already dispatched or rejected
        (or of one earlier in the batch) is acknowledged and left alone.

        A valid entry naming an id whose Redis hash is final already (one
        the store may not know: an id a daemon rejected before rejected
        objectives were stored) is acknowledged and left alone, as a known
        id is: the daemon does not run an id that ended, so the store and the
        hash never disagree (``swarmctl submit --wait`` of it reports that
        ``failed``).  The ``queued`` mirror goes through :func:`mirror_state`
        too, so it never moves a final state back.
        """
        cfg = self.config.daemon
        acks, objs, rejected = [], [], []
        for entry_id, fields in entries:
            raw = None
            try:
                raw = json.loads(fields[b"objective"])
                objs.append((entry_id, validate(raw, self.config)))
            except (KeyError, ValueError, TypeError, ObjectiveError) as exc:
                logger.error("objective stream entry {} rejected at admission (skipped, acknowledged): {}: {}",
                             _text(entry_id), type(exc).__name__, exc)
                acks.append(entry_id)
                row = rejected_record(raw, f"rejected: {exc}"[:500], cfg.max_input_chars)
                if row is not None:
                    rejected.append(row)
        bad = len(acks)
        ended = self._ended_in_redis([o.id for _e, o in objs])
        for entry_id, obj in objs:
            if obj.id in ended:
                logger.info("objective {} ended already ({}): not run again; submit it under a new id",
                            obj.id, ended[obj.id])
                acks.append(entry_id)
        objs = [(e, o) for e, o in objs if o.id not in ended]
        new_flags = self.store.add_queued_many([o for _e, o in objs]) if objs else []
        # persisted before the XACK below: a crash in between re-reads and finds them
        stored = self.store.add_rejected_many(rejected) if rejected else []
        # stored failed by this pass, or by one that died before the XACK (read back only then);
        # else the id is another objective's
        rejected = [r for r, new in zip(rejected, stored) if new or (
            (rec := self.store.get(r["id"]))["state"] == "failed" and rec["reason"] == r["reason"])]
        malformed = bad - len(rejected)
        retry = Retry(max=cfg.retry_max, interval=cfg.retry_intervals_s) if cfg.retry_max else None
        by_queue: dict[str, list] = {}
        refused, seen = [], set()
        for (entry_id, obj), new in zip(objs, new_flags):
            acks.append(entry_id)
            if obj.id in seen or not new and self._dispatched(obj.id):
                logger.info("objective {} already dispatched; not enqueued again", obj.id)
                continue
            seen.add(obj.id)
            verdict = self.admission(obj)
            if verdict.decision != "allow":   # not new: stored queued by a pass that died before refusing it
                row = audit_row(obj.id, "admission", {"action": obj.action, "tags": obj.tags}, verdict)
                log_row(row)
                refused.append((f"refused:{obj.id}", "failed", obj.id, {
                    "reason": f"refused: {verdict.rule} {verdict.reason}", "action": obj.action,
                    "ts": time.time(), "audit": [row]}))
                continue
            by_queue.setdefault(K.PRIORITY_QUEUE[obj.priority], []).append(obj)
        if refused:   # persisted before the XACK below: a crash in between re-reads and skips them
            self.apply_events(refused)
        failpoint("after_store")
        pipe = self.redis.pipeline()
        for name, group in by_queue.items():
            queue = self.queues[name]
            queue.enqueue_many([Queue.prepare_data(
                parking.JOB_FUNC, (obj.to_dict(),), job_id=obj.id, timeout=cfg.job_timeout_s,
                result_ttl=cfg.result_ttl_s, failure_ttl=cfg.result_ttl_s, retry=retry,
                description=f"{obj.action} {obj.id}") for obj in group], pipeline=pipe)
            for obj in group:   # not over a final state (none here: ids that ended were left alone above)
                mirror_state(pipe, obj.id, {"state": "queued", "action": obj.action}, cfg.result_ttl_s)
        for row in rejected:
            mirror_state(pipe, row["id"], {"state": "failed", "reason": row["reason"], "result": json.dumps(
                {"status": "failed", "reason": row["reason"]})}, cfg.result_ttl_s)
        if acks:
            pipe.xack(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP, *acks)
        if malformed:
            pipe.hincrby(K.STATS, "malformed_objectives", malformed)
        pipe.execute()
        for name, group in by_queue.items():      # one line per queue and batch
            logger.info("{} objective(s) queued on {}: {}", len(group), name,
                        ", ".join(f"{obj.id} action={obj.action}" for obj in group))

    def _ended_in_redis(self, ids: list[str]) -> dict[str, str]:
        """``{id: final state}`` of the ``ids`` whose Redis hash holds a final
        state (:data:`FINAL_STATES`); one pipelined round trip."""
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for oid in ids:
            pipe.hget(K.objective_key(oid), "state")
        return {oid: state.decode() for oid, state in zip(ids, pipe.execute())
                if state is not None and state.decode() in FINAL_STATES}

    def _dispatched(self, objective_id: str) -> bool:
        """Whether a stored objective was handled by an earlier admission: past ``queued`` in the
        store, or its RQ job exists (``queued`` with no job: that admission died before enqueuing
        or refusing it)."""
        return self.store.get(objective_id)["state"] != "queued" or Job.exists(objective_id, connection=self.redis)

    # ------------------------------------------------------------------ events
    def apply_events(self, events: list[tuple[str, str, str, dict]], acks: list | None = None) -> None:
        """Persist worker events in one transaction (each once), then mirror
        the new states into Redis and acknowledge ``acks`` (event-stream entry
        ids) in one pipeline, and log one line for the batch (each state
        change in it, by objective id).

        A final state is never overwritten: an event that would change it
        (``failed`` from RQ's failed-job registry after the worker reported
        ``done`` and died before RQ recorded the job finished; a late
        ``started``) is kept out of the store (:meth:`Store.persist_events`)
        and of the Redis mirror (:func:`swarmd.objectives.mirror_state`, which
        also refuses when the hash is final already), and logged as ignored."""
        persisted = self.store.persist_events(events) if events else []
        for _event_id, kind, oid, payload in events:   # every time (idempotent): none lost on a retry
            if kind == "finished":
                observe_finished(self.memory, partial(self.store.get, oid), payload)
        pipe = self.redis.pipeline()
        lines, mirrored = [], []
        for (event_id, kind, oid, payload), (new, kept) in zip(events, persisted):
            # not new: persisted by an earlier pass whose Redis mirror may have failed; mirrored again
            if kind == "resolved":   # the resolver already mirrored state "queued" into Redis
                if new:
                    lines.append(("objective {} {} by {}; queued again", (oid, payload.get("resolution"),
                                                                      payload.get("by"))))
                continue
            state = {"started": "running", "failed": "failed"}.get(kind) or payload.get("state")
            if kept is not None:
                lines.append(("objective {} stays {}: its {} event ({}) ignored", (oid, kept, kind, state)))
                continue
            mirror = {"state": state}
            if kind == "finished":
                mirror["result"] = json.dumps(payload.get("result", {}))
            elif kind == "failed":
                mirror["result"] = json.dumps({"status": "failed", "reason": payload.get("reason")})
            mirrored.append((len(pipe), new, kind, oid, state))
            mirror_state(pipe, oid, mirror, self.config.daemon.result_ttl_s)
            result = payload.get("result", {})
            if not new:
                continue
            if kind == "started":
                lines.append(("objective {} running worker={}", (oid, payload.get("worker"))))
            else:
                reason = payload.get("reason") or result.get("reason")
                lines.append(("objective {} {} action={} tier={} cost=${:.6f}{}",
                              (oid, state, payload.get("action", "?"), result.get("tier"),
                               result.get("cost_usd") or 0.0, f" reason={reason}" if state != "done" else "")))
        if acks:
            pipe.xack(K.EVENT_STREAM, K.EVENT_GROUP, *acks)
        replies = pipe.execute()
        for at, new, kind, oid, state in mirrored:
            if new and replies[at] is not None:   # the store took it, the mirror was final already
                lines.append(("objective {} stays {} in Redis: its {} event ({}) ignored there",
                              (oid, _text(replies[at]), kind, state)))
        if lines:      # one line per batch: a log call costs more than its length
            logger.info("; ".join(fmt.format(*args) for fmt, args in lines))

    def worker_died(self, worker_name: str) -> list[str]:
        """A worker this daemon supervises exited: hand the job(s) it was
        running back to RQ at once (:func:`swarmd.daemon.recovery.abandon_jobs_of`,
        then :meth:`reap_abandoned`).  Returns the job ids handed back."""
        marked = abandon_jobs_of(self.redis, worker_name, parking.swarmd_queues(self.redis))
        if marked:
            self.reap_abandoned()
        return marked

    def reap_abandoned(self) -> None:
        """Hand jobs whose worker died mid-job back to RQ's own handling now,
        rather than at some worker's next maintenance (every 10 minutes).

        A swarmd worker's started-job entry lives 15 s past its last
        heartbeat (:data:`swarmd.workers.context.HEARTBEAT_TTL_S`, renewed
        every 5 s while the job runs); once it has expired with the
        job still ``started``, RQ's ``StartedJobRegistry.cleanup`` retries the
        job if its ``Retry`` has runs left (``daemon.retry_max``) or moves it to
        the failed registry, which :meth:`sweep_failed` persists. Runs under
        the queue's maintenance lock, the one RQ workers take for the same
        cleanup, so a job is never handed back twice."""
        for queue in parking.swarmd_queues(self.redis):
            if queue.acquire_maintenance_lock():
                try:
                    StartedJobRegistry(queue=queue).cleanup()
                finally:
                    queue.release_maintenance_lock()

    def requeue_lost(self) -> list[str]:
        """Put back in their queue the jobs a worker popped and died before it
        recorded them as started.  Returns the ids put back.

        RQ workers listening on several queues take a job with BLPOP and only
        then register it as started (its intermediate queue, which closes that
        gap, is used for one queue only): a worker killed in between leaves a
        job with status ``queued`` that is in no queue and no registry, so
        nothing would ever run it.  An objective ``queued`` in the store for
        more than :data:`LOST_AFTER_S` whose job is in that state on two
        passes :data:`LOST_AFTER_S` apart is pushed back to the front of its
        queue (the ``finished`` marker keeps a job that did run from running twice)."""
        candidates = self.store.queued_before(time.time() - LOST_AFTER_S)
        if not candidates:
            self._lost_seen.clear()
            return []
        waiting = {j.decode() if isinstance(j, bytes) else j for name in K.QUEUES
                   for j in self.redis.lrange(self.queues[name].key, 0, -1)}
        maybe = [oid for oid in candidates if oid not in waiting]
        pipe = self.redis.pipeline(transaction=False)
        for oid in maybe:
            pipe.hmget(f"{Job.redis_job_namespace_prefix}{oid}", "status", "origin")
        now, lost, seen = time.monotonic(), [], {}
        for oid, (status, origin) in zip(maybe, pipe.execute()):
            if status != b"queued" or origin is None or origin.decode() not in self.queues:
                continue
            seen[oid] = self._lost_seen.get(oid, now)
            if now - seen[oid] >= LOST_AFTER_S:
                lost.append((oid, origin.decode()))
        self._lost_seen = {oid: t for oid, t in seen.items() if oid not in dict(lost)}
        for oid, origin in lost:
            self.queues[origin].push_job_id(oid, at_front=True)
            logger.warning("objective {}: its job was taken from queue {} by a worker that died before starting "
                           "it; put back in the queue", oid, origin)
        return [oid for oid, _o in lost]

    def promote_scheduled(self) -> None:
        """Enqueue RQ retries whose time has come (the daemon is RQ's scheduler:
        :func:`swarmd.daemon.recovery.promote_due_jobs`)."""
        promote_due_jobs(self.redis, parking.swarmd_queues(self.redis), parking.JOB_SERIALIZER)

    def sweep_failed(self) -> None:
        """Persist jobs RQ gave up on (its failed-job registry) as ``failed``."""
        for queue in parking.swarmd_queues(self.redis):
            registry = FailedJobRegistry(queue=queue)
            for job_id in registry.get_job_ids():
                job = Job.fetch(job_id, connection=self.redis, serializer=parking.JOB_SERIALIZER) \
                    if Job.exists(job_id, connection=self.redis) else None
                reason, oid = "job failed", job_id.split("__r")[0]   # resumed runs: <id>__r<n>
                if job is not None:
                    info = (job.latest_result().exc_string if job.latest_result() else None) or ""
                    reason = (info.strip().splitlines() or ["job failed"])[-1][:500]
                self.apply_events([(f"failed:{job_id}", "failed", oid, {"reason": reason, "ts": time.time()})])
                registry.remove(job_id, delete_job=False)

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

    def read_streams(self, block_ms: int = 500) -> list:
        """New entries of both streams, each read under its own consumer group
        (XREADGROUP takes one group, so one call per stream); when both are
        empty, waits up to ``block_ms`` for a new entry in either and reads
        again.  Returns XREADGROUP's shape: ``[(stream, [(entry_id, fields)])]``."""
        batches = self._read_new()
        if batches:
            return batches
        self._wait_for_new(block_ms)
        return self._read_new()

    _READS = ((K.EVENT_STREAM, K.EVENT_GROUP), (K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP))
    #: entries read from each stream at most per read
    READ_COUNT = 200

    def _read_new(self) -> list:
        """One XREADGROUP per stream: new entries (``>``), or for a stream in
        ``_redo`` this consumer's pending ones (id ``0``) until none are left.
        Pending entries deleted from the stream meanwhile are acknowledged."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, group in self._READS:
            pipe.xreadgroup(group, self.consumer, {stream: "0" if stream in self._redo else ">"},
                            count=self.READ_COUNT)
        batches = []
        for (stream, group), result in zip(self._READS, pipe.execute()):
            entries = [e for _s, es in result or [] for e in es]
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:
                self.redis.xack(stream, group, *gone)
            live = [(entry_id, fields) for entry_id, fields in entries if fields]
            if stream in self._redo and not entries:
                self._redo.discard(stream)
            if live:
                batches.append((stream, live))
        return batches

    def _wait_for_new(self, block_ms: int) -> None:
        """Block (XREAD, up to ``block_ms``) until an entry newer than what
        each group was last handed arrives in either stream."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, _group in self._READS:
            pipe.xinfo_groups(stream)
        last = {}
        for (stream, group), groups in zip(self._READS, pipe.execute()):
            delivered = [g["last-delivered-id"] for g in groups if g["name"] in (group, group.encode())]
            last[stream] = delivered[0] if delivered else "0-0"
        self.redis.xread(last, count=1, block=block_ms)

    def handle(self, batches: list) -> None:
        """Handle one :meth:`read_streams` result: worker events first, then
        new objectives, so an objective whose id already finished (its event
        read in the same batch) is seen as final and not dispatched again."""
        got = {(s.decode() if isinstance(s, bytes) else s): entries for s, entries in batches}
        if got.get(K.EVENT_STREAM):
            try:
                self._events(got[K.EVENT_STREAM])
            except BaseException:
                self._redo.add(K.EVENT_STREAM)
                raise
        entries = got.get(K.OBJECTIVE_STREAM)
        if entries:
            failpoint("after_read")
            try:
                self.admit_batch(entries)
            except BaseException:
                self._redo.add(K.OBJECTIVE_STREAM)
                raise

    def _events(self, entries: list) -> None:
        """Persist a batch of event-stream entries, then acknowledge them.  A
        malformed entry (not parseable, or one the store cannot apply) is
        logged, acknowledged and counted; if the store or Redis fails
        (:data:`TRANSIENT`), this raises, nothing is acknowledged and the batch
        stays pending for the next pass."""
        parsed, bad = [], []
        for entry_id, fields in entries:
            try:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                event = (eid, fields[b"kind"].decode(), fields[b"id"].decode(), json.loads(fields[b"payload"]))
                if event[1] not in EVENT_KINDS or not event[2] or not isinstance(event[3], dict):
                    raise ValueError(f"kind {event[1]!r}, id {event[2]!r}, payload a {type(event[3]).__name__}")
                if event[1] == "finished" and event[3].get("state") not in STATES:
                    raise ValueError(f"finished with state {event[3].get('state')!r}")
                parsed.append(event)
            except (KeyError, ValueError, AttributeError, TypeError) as exc:
                self._malformed_event(entry_id, exc)
                bad.append(entry_id)
        acks = [e for e, _f in entries]
        try:     # the usual case: persisted, mirrored and acknowledged (after the commit) in one pass
            self.apply_events(parsed, acks=None if bad else acks)
            if not bad:
                return
        except TRANSIENT:
            raise
        except Exception:     # some entry the store cannot apply: apply them one by one
            for event in parsed:
                try:
                    self.apply_events([event])
                except TRANSIENT:
                    raise
                except Exception as exc:
                    self._malformed_event(event[0], exc)
                    bad.append(event[0])
        pipe = self.redis.pipeline()
        pipe.xack(K.EVENT_STREAM, K.EVENT_GROUP, *acks)
        if bad:
            pipe.hincrby(K.STATS, "malformed_events", len(bad))
        pipe.execute()

    @staticmethod
    def _malformed_event(entry_id, exc: BaseException) -> None:
        logger.error("event stream entry {} is malformed and is dropped (acknowledged, counted): {}: {}",
                     _text(entry_id), type(exc).__name__, exc)

    def drain_events(self) -> int:
        """Persist every new event without blocking (at start-up and shutdown);
        returns how many entries were read."""
        total = 0
        while True:
            batches = self.redis.xreadgroup(K.EVENT_GROUP, self.consumer, {K.EVENT_STREAM: ">"}, count=1000)
            entries = [e for _stream, es in batches or [] for e in es]
            if not entries:
                return total
            self._events(entries)
            total += len(entries)

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
