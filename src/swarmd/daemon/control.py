"""Objective control shared by ``swarmctl`` and the HTTP API: submit, list, cancel, retry.

* :func:`validate_batch` raises one :class:`BatchError` naming every bad field of every bad
  objective (by index); :func:`push` refuses a batch the running daemon cannot answer (same
  error), gives each a ``submit`` trace span, and puts them on the objective stream at once.
* :func:`cancel`: an objective that has not ended becomes ``cancelled`` (final), atomically
  with a ``finished`` event, so no worker runs it afterwards; a parked one can no longer be
  approved; a running one stops at its worker's next check of the marker (before an
  escalation, an agent step or a tool action) and its job gets RQ's stop-job command, never
  a kill.  An ended one raises :class:`Ended` (HTTP 409), an unknown one :class:`NotFound`.
* :func:`retry`: a failed, unresolved or cancelled objective is submitted again under
  :func:`retry_id` of its id (retrying twice submits once) with ``retry_of`` set.

How cancel races with workers: docs/design.md.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from redis import Redis
from redis.commands.core import Script
from rq import Worker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from swarmd import constants as K
from swarmd import queue as Q
from swarmd import telemetry
from swarmd.agent import approvals
from swarmd.agent.changes import discard_copy
from swarmd.config import AGENT_ACTION, Config
from swarmd.errors import BadInput
from swarmd.objectives import FINAL_STATES, Objective, ObjectiveError, mirror_state, validate
from swarmd.daemon.store import Store
from swarmd.router.reach import plan_problem
from swarmd.validation import Problem

#: States an objective may be retried from (:func:`retry`).
RETRYABLE = ("failed", "unresolved", "cancelled")


class NotFound(BadInput, LookupError):
    """No objective with that id in the store or in Redis (HTTP 404, exit 2)."""


class Ended(BadInput):
    """The objective is in a state the operation does not apply to, e.g. cancel
    of an ended one or retry of a done one (HTTP 409, exit 2)."""


class BatchError(BadInput):
    """Objectives that cannot be submitted: ``problems`` lists every one as
    ``(index, Problem)`` (index into the batch; :class:`swarmd.validation.Problem`
    names the field, expected and found).  Nothing of the batch is submitted."""

    def __init__(self, problems: list[tuple[int, Problem]]):
        self.problems = problems
        super().__init__("nothing submitted:\n" + "\n".join(str(p) for _i, p in problems))

    def as_json(self) -> list[dict]:
        """``[{"index", "field", "expected", "found"}]``: the HTTP API's 422 detail."""
        return [{"index": i, "field": p.key, "expected": p.expected, "found": p.found} for i, p in self.problems]


def validate_batch(raws: list[Any], config: Config, label: str = "objectives") -> list[Objective]:
    """Each raw objective (decoded JSON) validated as ``submit`` does
    (:func:`swarmd.objectives.validate`); raises :class:`BatchError` with every
    problem of every item (``label[i]`` as the problem's file) and for ids
    repeated within the batch."""
    objectives, problems = [], []
    for i, raw in enumerate(raws):
        try:
            objectives.append(validate(raw, config, file=f"{label}[{i}]"))
        except ObjectiveError as exc:
            problems += [(i, p) for p in exc.problems]
    seen: dict[str, int] = {}
    for i, obj in enumerate(objectives if not problems else []):
        if obj.id in seen:
            problems.append((i, Problem(f"{label}[{i}]", None, "id", "an id not repeated in the batch",
                                        f"{obj.id!r} again (first at index {seen[obj.id]})")))
        seen.setdefault(obj.id, i)
    if problems:
        raise BatchError(problems)
    return objectives


def reach_problems(client: Redis, config: Config, objectives: list[Objective]) -> list[tuple[int, Problem]]:
    """``(index, Problem)`` for each objective whose plan has no model the running daemon
    can reach (:func:`swarmd.router.reach.plan_problem` over the ``model_problems`` of its
    heartbeat: the daemon's API key and Ollama hosts, not the caller's), e.g. ``api_only``
    with no ``ANTHROPIC_API_KEY``: it would end "every tier unavailable".  The problem's
    file is ``objective ID``, its key ``strategy`` (the plan is the action's under it).  Agent objectives
    are not checked (an execution trace may replay them without a model); without a
    heartbeat (no daemon running yet) nothing is.  Raises ``redis.RedisError``."""
    raw = client.hget(K.HEARTBEAT, "model_problems")
    if not raw:
        return []
    problems = json.loads(raw)
    found = []
    for i, obj in enumerate(objectives):
        if obj.action == AGENT_ACTION or obj.action not in config.actions:
            continue
        problem = plan_problem(config, obj.action, obj.strategy, problems)
        if problem is not None:
            found.append((i, Problem(f"objective {obj.id}", None, "strategy",
                                     "a plan with a model the running daemon can reach", problem)))
    return found


def _traced(objectives: list[Objective]) -> tuple[list[Objective], list]:
    """Each objective with the W3C ``traceparent`` of a new root ``submit`` span
    (:mod:`swarmd.telemetry`), and those spans (ended by the caller once queued)."""
    out, spans = [], []
    for obj in objectives:
        span = telemetry.start_root("submit", **{"swarmd.objective.id": obj.id, "swarmd.action": obj.action})
        spans.append(span)
        out.append(obj.model_copy(update={"traceparent": telemetry.traceparent_of(span)}))
    return out, spans


def push(client: Redis, objectives: list[Objective], config: Config) -> list[str]:
    """Submit ``objectives`` (validated) as ``swarmctl submit``, the API and :func:`retry` all
    do: refuse the whole batch with :class:`BatchError` when one cannot be answered by the
    running daemon (:func:`reach_problems`); when this process traces, give each a root
    ``submit`` span whose context travels in its fields (one trace per objective); then put
    them on the objective stream, with their Redis state ``submitted``, in one transaction.
    Returns their ids.  Raises ``redis.RedisError`` when Redis fails (then nothing was submitted)."""
    problems = reach_problems(client, config, objectives)
    if problems:
        raise BatchError(problems)
    spans = []
    if telemetry.enabled():
        objectives, spans = _traced(objectives)
    try:
        pipe = client.pipeline(transaction=True)
        for obj in objectives:
            # not over a final state: the daemon does not run a known id again, so "submitted" would stay
            mirror_state(pipe, obj.id, {"state": "submitted", "action": obj.action}, config.daemon.result_ttl_s)
            pipe.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(obj.to_dict())})
        pipe.execute()
    finally:
        for span in spans:
            span.end()
    return [o.id for o in objectives]


def lookup(store: Store | None, client: Redis | None, objective_id: str) -> dict:
    """One objective: the store's record (:meth:`Store.get`, with attempts),
    else what its Redis hash holds (``id``, ``state``, ``action``; a submitted
    objective not yet admitted).  Raises :class:`NotFound`."""
    record = store.get(objective_id) if store is not None else None
    if record is not None:
        return record
    raw = client.hgetall(K.objective_key(objective_id)) if client is not None else {}
    if not raw:
        raise NotFound(f"no objective {objective_id!r}")
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return {"id": objective_id, "state": fields.get("state"), "action": fields.get("action")}


# KEYS: finished marker, event stream, objective hash.  ARGV: objective id, payload (JSON), marker TTL (s),
# then the final states.  Returns the final state found (nothing written), or nil once cancelled.
_CANCEL_LUA = b"""
local done = redis.call('GET', KEYS[1])
if done then return done end
local state = redis.call('HGET', KEYS[3], 'state')
for i = 4, #ARGV do
  if state == ARGV[i] then return state end
end
redis.call('SET', KEYS[1], 'cancelled', 'EX', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'kind', 'finished', 'id', ARGV[1], 'payload', ARGV[2])
return false
"""
_CANCEL = Script(None, _CANCEL_LUA)


def cancel(client: Redis, store: Store | None, objective_id: str, by: str, config: Config,
           data_dir: Path | None = None) -> dict:
    """Cancel an objective that has not ended (module docstring); returns
    ``{"id", "was": previous state, "state": "cancelled", "stopped_job": RQ job
    id sent stop-job or None}``.  ``by``: who cancelled (in the reason).
    ``data_dir``: where a parked (``awaiting_approval``) agent objective keeps
    its workspace copy; that copy is removed (no worker will resume it).  Raises
    :class:`NotFound`, :class:`Ended` (naming its final state), ``redis.RedisError``."""
    record = lookup(store, client, objective_id)
    was = record.get("state")
    if was in FINAL_STATES:
        raise Ended(f"objective {objective_id!r} has ended ({was}); nothing to cancel")
    reason = f"cancelled by {by} (was {was})"
    result = {"status": "cancelled", "reason": reason}
    event = Q.Finished(objective_id=objective_id, state="cancelled", result=result, attempts=[], action=record.get("action"),
                       ts=time.time(), worker=None)
    found = _CANCEL(keys=[Q.finished_key(objective_id), Q.EVENT_STREAM, K.objective_key(objective_id)],
                    args=[objective_id, event.to_fields()["payload"], Q.FINISHED_MARK_TTL_S, *FINAL_STATES],
                    client=client)
    if found is not None:
        found = found.decode() if isinstance(found, bytes) else found
        raise Ended(f"objective {objective_id!r} has ended ({found}); nothing to cancel")
    pipe = client.pipeline()
    approvals.clear(pipe, objective_id)    # a parked one can no longer be approved
    mirror_state(pipe, objective_id, {"state": "cancelled", "result": json.dumps(result)},
                 config.daemon.result_ttl_s)
    pipe.execute()
    if was == "awaiting_approval" and data_dir is not None:
        discard_copy(data_dir, objective_id)
    return {"id": objective_id, "was": was, "state": "cancelled", "stopped_job": _stop_running(client, objective_id)}


def _stop_running(client: Redis, objective_id: str) -> str | None:
    """Send RQ's ``stop-job`` command for the job of ``objective_id`` a worker
    is running (run 0: the id; a resumed run: ``<id>__r<n>``), if any; returns
    that job id."""
    for worker in Worker.all(connection=client, serializer=Q.JOB_SERIALIZER):
        job = worker.get_current_job_id()
        if job and (job == objective_id or job.startswith(objective_id + "__r")):
            try:
                send_stop_job_command(client, job, serializer=Q.JOB_SERIALIZER)
            except (InvalidJobOperation, NoSuchJobError):
                return None    # it ended meanwhile
            return job
    return None


def retry_id(objective_id: str) -> str:
    """The id of the retry of ``objective_id``: ``<id>-retry-<8 hex of its
    sha256>`` (the id cut to 100 characters: ids are at most 128), the same
    every time, so retrying one objective twice submits one new objective."""
    return f"{objective_id[:100]}-retry-{hashlib.sha256(objective_id.encode()).hexdigest()[:8]}"


def retry(client: Redis, store: Store | None, objective_id: str, config: Config) -> dict:
    """Submit a failed, unresolved or cancelled objective again as
    :func:`retry_id` of its id, with ``retry_of`` its id and its action, input,
    labels, priority, cost cap, strategy and tags (validated against today's
    config).  Returns ``{"id": new id, "retry_of": objective_id}``.  Raises
    :class:`NotFound` (also when only Redis knows it: its input is in the store),
    :class:`Ended` when its state is not in :data:`RETRYABLE`,
    :class:`BatchError` when it no longer validates."""
    record = store.get(objective_id) if store is not None else None
    if record is None:
        lookup(None, client, objective_id)      # NotFound unless Redis knows it
        raise NotFound(f"objective {objective_id!r} is not in the store yet; retry it once it has ended")
    if record["state"] not in RETRYABLE:
        raise Ended(f"objective {objective_id!r} is {record['state']}; only {', '.join(RETRYABLE)} "
                    "objectives can be retried")
    raw = {k: record[k] for k in ("action", "input", "labels", "priority", "max_cost_usd", "strategy", "tags")
           if record.get(k) is not None}
    raw.update(id=retry_id(objective_id), retry_of=objective_id)
    push(client, validate_batch([raw], config, label="retry"), config)
    return {"id": raw["id"], "retry_of": objective_id}
