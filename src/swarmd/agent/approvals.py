"""Approvals: an ``ask`` from the governor parks the objective until a human decides.

:func:`park` writes the park record (JSON at :func:`swarmd.constants.park_key`:
the objective, run number, proposed tool and args, the governor's rule and
reason, the agent loop state, the site holding the workspace) and adds the id
to :data:`swarmd.constants.PARKED`.  :func:`resolve` (``swarmctl
approve``/``reject``, or the daemon's timeout job) records the resolution,
re-enqueues the objective as job ``<id>__r<run+1>`` on the site's resume queue
and appends a ``resolved`` event, in one Redis transaction: exactly one
resolver wins (others get :class:`NotParked`).  The resumed job reads the
record (:func:`load`) and deletes it when it ends without parking again
(:func:`clear`).  Record layout: docs/design.md (swarmd.agent.approvals).
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue, Retry

from swarmd import constants as K
from swarmd.config import Config
from swarmd.errors import BadInput
from swarmd.governor.audit import audit_row, log_row
from swarmd.governor.policy import Decision
from swarmd.objectives import mirror_state
from swarmd.queue import JOB_FUNC, PRIORITY_QUEUE, Resolved, emit, job_id, queue, resume_queue, site

#: Resolution → (decision recorded in the audit log, rule id).
RESOLUTIONS: dict[str, tuple[str, str]] = {
    "approve": ("allow", "approval.approved"),
    "reject": ("deny", "approval.rejected"),
    "timeout": ("deny", "approval.timeout"),
}
class NotParked(BadInput, LookupError):
    """The objective is not parked (unknown id, never parked, or already resolved)."""


def park(pipe, objective: dict, run: int, tool: str, args: dict, decision: Decision, loop: dict,
         now: float | None = None) -> dict:
    """Queue the commands that park an objective on ``pipe`` (a Redis pipeline;
    the caller executes it, together with its ``finished`` event).  Returns the
    record; its ``site`` (:func:`site`) sends the resumed run back to a worker
    on this machine, where the workspace is."""
    now = time.time() if now is None else now
    record = {"objective": objective, "run": run, "parked_at": now, "tool": tool, "args": args,
              "rule": decision.rule, "reason": decision.reason, "loop": loop, "resolution": None,
              "site": site()}
    pipe.set(K.park_key(objective["id"]), json.dumps(record))
    pipe.zadd(K.PARKED, {objective["id"]: now})
    return record


def load(redis: Redis, objective_id: str) -> dict | None:
    """The park record of ``objective_id``, or ``None`` when there is none."""
    raw = redis.get(K.park_key(objective_id))
    return json.loads(raw) if raw else None


def clear(pipe, objective_id: str) -> None:
    """Queue the commands that forget a park record on ``pipe``."""
    pipe.delete(K.park_key(objective_id))
    pipe.zrem(K.PARKED, objective_id)


def list_parked(redis: Redis) -> list[dict]:
    """Every parked objective awaiting a decision, oldest first: park records
    (see the module docstring) with ``id`` added."""
    ids = [i.decode() if isinstance(i, bytes) else i for i in redis.zrange(K.PARKED, 0, -1)]
    if not ids:
        return []
    out = []
    for oid, raw in zip(ids, redis.mget([K.park_key(i) for i in ids])):
        if raw:
            record = json.loads(raw)
            if record.get("resolution") is None:
                out.append({"id": oid, **record})
    return out


def expired(redis: Redis, timeout_s: float, now: float | None = None) -> list[str]:
    """Ids parked for longer than ``timeout_s`` seconds."""
    cutoff = (time.time() if now is None else now) - timeout_s
    return [i.decode() if isinstance(i, bytes) else i for i in redis.zrangebyscore(K.PARKED, "-inf", cutoff)]


def resolve(redis: Redis, objective_id: str, resolution: str, by: str, config: Config,
            now: float | None = None) -> dict:
    """Decide a parked objective and queue it again (see the module docstring).

    ``resolution``: ``approve`` | ``reject`` | ``timeout``; ``by``: who
    decided (a user name, or ``swarmd`` for timeouts).  ``config`` supplies
    the job options (``daemon.job_timeout_s``, ``result_ttl_s``, retries).
    Writes the loguru audit line here, where the decision is made.  Returns
    the updated record plus ``job_id``.  Raises :class:`NotParked` when the
    objective is not awaiting a decision, ``ValueError`` for an unknown
    resolution, ``redis.RedisError`` when Redis fails.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {sorted(RESOLUTIONS)}, found {resolution!r}")
    key = K.park_key(objective_id)
    cfg = config.daemon
    retry = Retry(max=cfg.retry_max, interval=cfg.retry_intervals_s) if cfg.retry_max else None
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key, K.PARKED)
                raw = pipe.get(key)
                record = json.loads(raw) if raw else None
                if record is None or record.get("resolution") is not None \
                        or pipe.zscore(K.PARKED, objective_id) is None:
                    raise NotParked(f"objective {objective_id!r} is not awaiting approval")
                ts = time.time() if now is None else now
                verdict, rule = RESOLUTIONS[resolution]
                reason = _reason(resolution, by, record, config)
                record["resolution"] = {"decision": resolution, "by": by, "ts": ts, "rule": rule, "reason": reason}
                row = audit_row(objective_id, record["tool"], record["args"], Decision(verdict, rule, reason))
                run = int(record["run"]) + 1
                objective = record["objective"]
                name = resume_queue(record["site"]) if record.get("site") else \
                    PRIORITY_QUEUE.get(objective.get("priority", "normal"), "default")
                resume = queue(name, redis)   # back to the machine that holds the workspace
                pipe.multi()
                pipe.set(key, json.dumps(record))
                pipe.zrem(K.PARKED, objective_id)
                resume.enqueue_many([Queue.prepare_data(
                    JOB_FUNC, (objective,), job_id=job_id(objective_id, run), timeout=cfg.job_timeout_s,
                    result_ttl=cfg.result_ttl_s, failure_ttl=cfg.result_ttl_s, retry=retry,
                    description=f"{objective.get('action')} {objective_id} ({resolution})")], pipeline=pipe)
                # not over a final state, as every other writer of the mirror
                mirror_state(pipe, objective_id, {"state": "queued"}, cfg.result_ttl_s)
                emit(pipe, Resolved(objective_id, resolution=resolution, by=by, ts=ts, audit=[row]))
                pipe.execute()
                break
            except WatchError:
                continue   # changed while we looked (another resolver, or the worker): look again
    log_row(row)
    return {**record, "id": objective_id, "job_id": job_id(objective_id, run)}


def _reason(resolution: str, by: str, record: dict, config: Config) -> str:
    asked = f"governor said ask: {record['rule']}"
    if resolution == "approve":
        return f"approved by {by} ({asked})"
    if resolution == "reject":
        return f"rejected by {by} ({asked})"
    return (f"no decision within governor.approval_timeout_s={config.governor.approval_timeout_s:g}s "
            f"({asked})")


def resolution_decision(record: dict) -> Decision:
    """The resolution of a park record as a :class:`Decision` (``allow`` for
    approve, ``deny`` for reject/timeout).  Raises ``KeyError``/``TypeError``
    when the record has no resolution."""
    res = record["resolution"]
    return Decision(RESOLUTIONS[res["decision"]][0], res["rule"], res["reason"])


def age_s(record: dict[str, Any], now: float | None = None) -> float:
    """Seconds since the record was parked."""
    return (time.time() if now is None else now) - float(record["parked_at"])
