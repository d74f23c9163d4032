"""The RQ job that runs one objective through the router.

Runs inside a worker process (``swarmd worker``, see :mod:`swarmd.workers.main`)
and receives the worker's context first (:class:`swarmd.workers.context.WorkerContext`:
the router, and with it the in-process model, built once per process and
reused by every job; the policy; the Redis connection; the data directory).
The job reports to the daemon through the event stream
(:data:`swarmd.queue.EVENT_STREAM`): ``started`` when it begins,
``finished`` with the result, attempts and their ledger data when it ends.  A
model failure is an ``unresolved`` result, never a crashed job; a crashed job
(a bug, a timeout) is retried by RQ and, once retries are spent, reported by
the daemon from RQ's failed-job registry.

Objectives of the ``agent`` action run the agent loop
(:mod:`swarmd.agent.loop`) instead of one router call, as a follower of
a stored execution trace or as the learner after the planner
(:mod:`swarmd.agent.follower`; trace updates travel in the ``finished``
event's ``trace``): every tool action
is judged by the governor (policy: ``governor.policy`` in the config,
re-read when the file changes), tools run in ``<data dir>/workspaces/<id>``
(the context's data directory: the worker's ``--data-dir``, which the daemon
passes to the workers it starts), and the decisions travel to the daemon in
the ``finished`` event's ``audit`` list (workers may have no access to the
daemon's SQLite).  An ``ask`` parks the objective
(:mod:`swarmd.agent.approvals`): the park record and the ``finished`` event
with state ``awaiting_approval`` are written in one Redis transaction.

A label objective routed ahead together with others of its queue
(:mod:`swarmd.workers.batching`) finds its result in the context
(``ctx.routed``, checked for a final report and ``started`` reported already)
instead of calling the router; the rest is the same.

A final ``finished`` event is written with
:func:`swarmd.queue.finished_key` (one transaction): a worker that dies
after reporting but before RQ records the job as done leaves a job that RQ
runs again, and that run only logs that the objective is finished already.
An objective routed alone has that marker checked and its ``started`` event
written in one round trip (:func:`swarmd.queue.start`, a Lua script).

Test failpoints (:mod:`swarmd.testing.failpoints`): ``worker_mid_job``, ``worker_after_report``.
"""

from __future__ import annotations

import time

from loguru import logger

from swarmd import telemetry
from swarmd.agent import approvals
from swarmd.config import AGENT_ACTION
from swarmd.governor import AuditBuffer, Governor, PolicyError
from swarmd.memory.audit import maybe_audit
from swarmd.queue import Finished, Started, emit, reported_final, start
from swarmd.router import RequestError
from swarmd.testing.failpoints import failpoint
from swarmd.agent.loop import workspace_dir
from swarmd.workers.context import WorkerContext, publish_tiers
from swarmd.agent.follower import run_with_traces


def run_objective(ctx: WorkerContext, objective: dict) -> dict:
    """RQ job: :func:`route_objective` inside the objective's trace span
    (:func:`swarmd.telemetry.objective_span`: continues the ``traceparent`` ``submit``
    wrote; a no-op when this worker does not trace)."""
    with telemetry.objective_span(objective):
        return route_objective(ctx, objective)


def route_objective(ctx: WorkerContext, objective: dict) -> dict:
    """RQ job: route ``objective`` (a validated objective dict) with its
    routing strategy and report it.

    ``ctx``: the worker's context (given by the worker, not enqueued).
    Returns ``{"state": "done"|"unresolved"|"failed", "result": {...},
    "attempts": [...], "action": str, "ts": float, "worker": str}``; the
    same dict goes into the ``finished`` event.  ``failed`` here means the
    request itself cannot be served (e.g. the action vanished from the config
    after a reload).
    """
    oid = objective["id"]
    failpoint("worker_mid_job", oid)
    if oid in ctx.routed:   # routed ahead with others (swarmd.workers.batching): checked and "started" then
        done = None
    elif objective.get("action") == AGENT_ACTION:
        done = reported_final(ctx.redis, oid)
    else:                   # the check and "started" in one round trip
        done = start(ctx.redis, Started(oid, worker=ctx.name, ts=time.time()))
    if done is not None:   # a re-run of a job whose worker died after reporting it
        logger.warning("objective {} was reported {} already; not run again", oid, done)
        return {"state": done, "result": {}, "attempts": [], "action": objective.get("action"),
                "ts": time.time(), "worker": ctx.name, "duplicate": True}
    if objective.get("action") == AGENT_ACTION:
        return run_agent_objective(ctx, objective)
    routed = ctx.routed.pop(oid, None)
    try:
        result = routed if routed is not None else ctx.router.route(
            objective["action"], objective["input"], tuple(objective.get("labels") or ()), objective_id=oid,
            request_id=oid, max_cost_usd=objective.get("max_cost_usd"), strategy=objective.get("strategy"))
        state = "done" if result.status == "accepted" else "unresolved"
        payload = {"state": state, "result": result.to_json(), "attempts": result.attempts_json()}
        if result.skips:
            payload["skipped"] = result.skips
    except RequestError as exc:
        result, payload = None, {"state": "failed", "result": {"reason": str(exc)}, "attempts": []}
    payload.update(action=objective["action"], ts=time.time(), worker=ctx.name)
    emit(ctx.redis, Finished.from_payload(oid, payload))
    publish_tiers(ctx)
    failpoint("worker_after_report", oid)
    if result is not None and ctx.router.config.strategy_of(objective["action"], objective.get("strategy")) \
            != "local_only":         # after the result is reported: an audit never delays it; it asks the API
        maybe_audit(ctx.router, ctx.redis, objective, result, ctx.config.memory.audit_rate)
    return payload


def run_agent_objective(ctx: WorkerContext, objective: dict) -> dict:
    """Run (or resume) an ``agent`` objective and report it; returns the
    ``finished`` payload: ``{"state", "result", "attempts", "audit", "action",
    "ts", "worker"}`` (``state`` may be ``awaiting_approval``)."""
    oid = objective["id"]
    conn = ctx.redis
    record = approvals.load(conn, oid)
    if record is not None and record.get("resolution") is None:
        # Parked already (this job is a re-run of the one that parked it): wait for the human.
        logger.info("objective {} is awaiting approval; nothing to run", oid)
        return {"state": "awaiting_approval", "result": {"status": "awaiting_approval"}, "attempts": [],
                "audit": [], "action": AGENT_ACTION, "ts": time.time(), "worker": ctx.name}
    emit(conn, Started(oid, worker=ctx.name, ts=time.time()))
    audit = AuditBuffer()
    try:
        governor = Governor(ctx.policy.get(), audit=audit)
    except PolicyError as exc:
        outcome = None
        payload = {"state": "failed", "result": {"status": "failed", "reason": f"governor policy unusable: {exc}"},
                   "attempts": []}
    else:
        workspace = workspace_dir(ctx.data_dir, oid)
        outcome = run_with_traces(objective, ctx.router, governor, ctx.config, workspace, ctx.traces, resume=record)
        payload = {"state": outcome.state, "result": outcome.result, "attempts": outcome.attempts}
        if outcome.trace:
            payload["trace"] = outcome.trace
    payload.update(audit=audit.drain(), action=AGENT_ACTION, ts=time.time(), worker=ctx.name)
    pipe = conn.pipeline()
    if outcome is not None and outcome.pending is not None:
        tool, args, decision = outcome.pending
        run = int(record["run"]) + 1 if record else 0
        approvals.park(pipe, objective, run, tool, args, decision, outcome.loop)
    elif record is not None:
        approvals.clear(pipe, oid)
    emit(pipe, Finished.from_payload(oid, payload))
    pipe.execute()
    publish_tiers(ctx)
    return payload
