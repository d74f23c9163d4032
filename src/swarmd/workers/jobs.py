"""The RQ job (:data:`swarmd.queue.JOB_FUNC`): run one objective and report it.

:func:`run_objective` receives the worker's context first
(:class:`swarmd.workers.context.WorkerContext`) and the objective dict.  A label objective
is one router call (or the result routed ahead in a batch, ``ctx.routed``); an ``agent``
objective runs :func:`swarmd.agent.follower.run_with_traces` under the governor in its own
copy of the workspace (the judged change set is applied at approval points:
:mod:`swarmd.agent.changes`), and an ``ask`` parks it (:mod:`swarmd.agent.approvals`).  It
reports ``started`` and ``finished`` through :mod:`swarmd.queue`; a final ``finished`` sets
the finished marker, so a re-run only logs that.  A model failure is ``unresolved``, never
a crashed job.  A cancelled running objective stops at the next :func:`stop_check` (before
an escalation, an agent step or a tool action; its change set is not applied) and reports
``cancelled`` with the calls already paid for.  Design notes: docs/design.md.
Test failpoints (:mod:`swarmd.testing.failpoints`): ``worker_mid_job``, ``worker_after_report``.
"""

from __future__ import annotations

import time
from pathlib import Path

from loguru import logger

from swarmd import telemetry
from swarmd.agent import approvals
from swarmd.config import AGENT_ACTION
from swarmd.governor import AuditBuffer, Governor, PolicyError
from swarmd.governor.workspace import WorkspaceError, discard
from swarmd.memory.audit import maybe_audit
from swarmd.objectives import FINAL_STATES
from swarmd.queue import Finished, Started, emit, reported_final, start, stop_check
from swarmd.router import STOPPED, RequestError
from swarmd.router.router import unique_skips
from swarmd.testing.failpoints import failpoint
from swarmd.agent.changes import CHANGESET_TOOL, agent_copy, approval_point, resume_changes
from swarmd.agent.follower import run_with_traces
from swarmd.agent.loop import CANCELLED
from swarmd.workers.context import WorkerContext, publish_tiers


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
            request_id=oid, max_cost_usd=objective.get("max_cost_usd"), strategy=objective.get("strategy"),
            should_stop=stop_check(ctx.redis, oid))
        state = "done" if result.status == "accepted" else CANCELLED if result.reason == STOPPED else "unresolved"
        if routed is not None and state != CANCELLED and reported_final(ctx.redis, oid) == CANCELLED:
            state = CANCELLED       # cancelled while its batch was routed: reported so, its calls kept, no audit
        payload = {"state": state, "result": result.to_json(), "attempts": result.attempts_json()}
        if result.skips:
            payload["skipped"] = result.skips
    except RequestError as exc:
        result, payload = None, {"state": "failed", "result": {"reason": str(exc)}, "attempts": []}
    payload.update(action=objective["action"], ts=time.time(), worker=ctx.name)
    emit(ctx.redis, Finished.from_payload(oid, payload))
    publish_tiers(ctx)
    failpoint("worker_after_report", oid)
    if result is not None and state != CANCELLED and ctx.router.config.strategy_of(objective["action"], objective.get("strategy")) \
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
        try:    # the agent works on its own copy; only the judged change set reaches the workspace
            copy = agent_copy(ctx.data_dir, oid, governor.policy)
        except (WorkspaceError, OSError) as exc:
            outcome = None
            payload = {"state": "failed", "attempts": [],
                       "result": {"status": "failed", "reason": f"workspace copy failed: {exc}"}}
        else:
            commit_as = oid if ctx.config.governor.commit_changes else None
            with ctx.router.collecting_skips(oid) as skips:     # every tier its plan, steps and checks skipped
                if record is not None and record.get("tool") == CHANGESET_TOOL:
                    outcome = resume_changes(copy, governor.policy, record, commit_as=commit_as)
                else:
                    outcome = run_with_traces(objective, ctx.router, governor, ctx.config, Path(copy.tree),
                                              ctx.traces, resume=record, should_stop=stop_check(conn, oid))
            if outcome.state == CANCELLED:      # stopped between steps: nothing of the copy is applied
                logger.info("objective {} cancelled while running: its change set is not applied to {}", oid,
                            copy.real)
            else:
                outcome = approval_point(copy, governor.policy, outcome, commit_as=commit_as)
            payload = {"state": outcome.state, "result": outcome.result, "attempts": outcome.attempts}
            if skips:
                payload["skipped"] = unique_skips(skips)
            if outcome.trace:
                payload["trace"] = outcome.trace
            if outcome.state in FINAL_STATES:
                discard(copy)
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
