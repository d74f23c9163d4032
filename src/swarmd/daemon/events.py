"""Worker events persisted once, mirrored into Redis, then acknowledged.

* **Every result is persisted once.**  Workers append ``started`` /
  ``finished`` / ``failed`` / ``resolved`` events to the event stream; the
  daemon writes each batch to SQLite in one transaction keyed by the event
  id, then mirrors the states and acknowledges the entries in one pipeline.
* **A final state is never overwritten** (``done``, ``unresolved``,
  ``failed``), in the store or in the Redis mirror
  (:func:`swarmd.constants.objective_key`): a later event for the objective
  is logged as ignored.  Audit rows arriving in events go to ``audit_log``.
* Entries that can never be handled are logged, acknowledged and counted
  (``malformed_events`` in :data:`swarmd.constants.STATS`).
"""

from __future__ import annotations

import json
from functools import partial

from loguru import logger

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.memory.outcomes import observe_finished
from swarmd.errors import BadInput
from swarmd.objectives import mirror_state
from swarmd.daemon.streams import TRANSIENT, as_text



class Events:
    """The event handling of :class:`swarmd.daemon.service.Daemon` (a mixin:
    uses ``config``, ``redis``, ``store``, ``memory`` and ``consumer``)."""

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
            pipe.xack(Q.EVENT_STREAM, Q.EVENT_GROUP, *acks)
        replies = pipe.execute()
        for at, new, kind, oid, state in mirrored:
            if new and replies[at] is not None:   # the store took it, the mirror was final already
                lines.append(("objective {} stays {} in Redis: its {} event ({}) ignored there",
                              (oid, as_text(replies[at]), kind, state)))
        if lines:      # one line per batch: a log call costs more than its length
            logger.info("; ".join(fmt.format(*args) for fmt, args in lines))

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
                parsed.append(Q.parse_event(fields, eid).as_tuple(eid))
            except BadInput as exc:
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
        pipe.xack(Q.EVENT_STREAM, Q.EVENT_GROUP, *acks)
        if bad:
            pipe.hincrby(K.STATS, "malformed_events", len(bad))
        pipe.execute()

    @staticmethod
    def _malformed_event(entry_id, exc: BaseException) -> None:
        logger.error("event stream entry {} is malformed and is dropped (acknowledged, counted): {}: {}",
                     as_text(entry_id), type(exc).__name__, exc)

    def drain_events(self) -> int:
        """Persist every new event without blocking (at start-up and shutdown);
        returns how many entries were read."""
        total = 0
        while True:
            batches = self.redis.xreadgroup(Q.EVENT_GROUP, self.consumer, {Q.EVENT_STREAM: ">"}, count=1000)
            entries = [e for _stream, es in batches or [] for e in es]
            if not entries:
                return total
            self._events(entries)
            total += len(entries)
