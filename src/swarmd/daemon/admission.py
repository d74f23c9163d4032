"""Admission: objective-stream entries validated, refused or enqueued as RQ jobs.

* **Nothing acknowledged is lost.**  An entry is acknowledged (XACK) only in
  the Redis pipeline that enqueues its job, after its row is stored.
* **Nothing is run twice by dispatch.**  The objective id is the RQ job id;
  an entry whose objective is already known to the store, or whose job
  already exists, is acknowledged without enqueuing again.
* **Governor:** objectives whose action or tags the policy's ``admission:``
  section refuses end ``failed`` (reason ``refused: <rule> <reason>``,
  audited) and never run; ``agent`` objectives are refused while the policy
  file cannot be loaded.  Parked objectives older than
  ``governor.approval_timeout_s`` are resolved as ``timeout`` (a deny).
* Entries that fail validation end visibly (:meth:`Admission.admit_batch`).

Test failpoint (:mod:`swarmd.testing.failpoints`): ``after_store``.
"""

from __future__ import annotations

import json
import time

from loguru import logger
from rq import Queue, Retry
from rq.job import Job

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.agent import approvals
from swarmd.config import AGENT_ACTION, Config
from swarmd.governor import Decision, Governor, PolicyError, audit_row, load_policy
from swarmd.governor.audit import log_row
from swarmd.objectives import FINAL_STATES, Objective, ObjectiveError, mirror_state, rejected_record, validate
from swarmd.daemon.streams import as_text
from swarmd.testing.failpoints import failpoint


class Admission:
    """The admission of :class:`swarmd.daemon.service.Daemon` (a mixin: uses
    ``config``, ``redis``, ``store``, ``queues``, ``governor``,
    ``policy_error`` and ``apply_events``)."""

    @staticmethod
    def _load_governor(config: Config) -> tuple[Governor | None, str | None]:
        """The governor for admission, or ``(None, why)`` when the policy file
        cannot be loaded (then ``agent`` objectives are refused)."""
        path = config.policy_path
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
        for oid in approvals.expired(self.redis, self.config.governor.approval_timeout_s):
            try:
                approvals.resolve(self.redis, oid, "timeout", "swarmd", self.config)
                logger.info("objective {} approval timed out; resumed with a deny", oid)
            except approvals.NotParked:
                pass   # resolved by a human meanwhile

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
        objs, acks, rejected = self._validate_entries(entries)
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
        acks += [entry_id for entry_id, _obj in objs]
        by_queue, refused = self._sort_admitted(objs, new_flags)
        if refused:   # persisted before the XACK below: a crash in between re-reads and skips them
            self.apply_events(refused)
        failpoint("after_store")
        pipe = self.redis.pipeline()
        self._enqueue(pipe, by_queue)
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

    def _validate_entries(self, entries: list) -> tuple[list, list, list]:
        """``(objs, acks, rejected)`` of objective-stream ``entries``: ``[(entry
        id, Objective)]`` of the valid ones; the entry ids of the others (each
        logged); the :func:`~swarmd.objectives.rejected_record` rows of those
        naming a usable id."""
        acks, objs, rejected = [], [], []
        for entry_id, fields in entries:
            raw = None
            try:
                raw = json.loads(fields[b"objective"])
                objs.append((entry_id, validate(raw, self.config)))
            except (KeyError, ValueError, TypeError, ObjectiveError) as exc:
                logger.error("objective stream entry {} rejected at admission (skipped, acknowledged): {}: {}",
                             as_text(entry_id), type(exc).__name__, exc)
                acks.append(entry_id)
                row = rejected_record(raw, f"rejected: {exc}"[:500], self.config.daemon.max_input_chars)
                if row is not None:
                    rejected.append(row)
        return objs, acks, rejected

    def _sort_admitted(self, objs: list, new_flags: list[bool]) -> tuple[dict[str, list], list]:
        """``(by_queue, refused)`` for the stored ``objs`` (``[(entry id,
        Objective)]``; ``new_flags``: whether the store had not known each):
        ``{RQ queue name: [Objective]}`` of those to enqueue, and the
        ``failed`` events of those the governor's admission refuses (audited).
        Ids dispatched already, or repeated in the batch, are left out (logged)."""
        by_queue: dict[str, list] = {}
        refused, seen = [], set()
        for (_entry_id, obj), new in zip(objs, new_flags):
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
            by_queue.setdefault(Q.PRIORITY_QUEUE[obj.priority], []).append(obj)
        return by_queue, refused

    def _enqueue(self, pipe, by_queue: dict[str, list]) -> None:
        """Queue on ``pipe`` one RQ job per objective of ``by_queue`` (job id =
        objective id, ``Retry`` from ``daemon.retry_max``/``retry_intervals_s``)
        and its ``queued`` Redis mirror."""
        cfg = self.config.daemon
        retry = Retry(max=cfg.retry_max, interval=cfg.retry_intervals_s) if cfg.retry_max else None
        for name, group in by_queue.items():
            queue = self.queues[name]
            queue.enqueue_many([Queue.prepare_data(
                Q.JOB_FUNC, (obj.to_dict(),), job_id=obj.id, timeout=cfg.job_timeout_s,
                result_ttl=cfg.result_ttl_s, failure_ttl=cfg.result_ttl_s, retry=retry,
                description=f"{obj.action} {obj.id}") for obj in group], pipeline=pipe)
            for obj in group:   # not over a final state (none here: ids that ended were left alone before)
                mirror_state(pipe, obj.id, {"state": "queued", "action": obj.action}, cfg.result_ttl_s)

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
