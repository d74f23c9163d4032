"""The RQ job that runs one objective through the router.

Runs inside a worker process (see :mod:`swarmd.workers.main`).  The router,
and with it the in-process model, is built once per process and reused by
every job.  The job reports to the daemon through the event stream
(:data:`swarmd.constants.EVENT_STREAM`): ``started`` when it begins,
``finished`` with the result, attempts and their ledger data when it ends.  A
model failure is an ``unresolved`` result, never a crashed job; a crashed job
(a bug, a timeout) is retried by RQ and, once retries are spent, reported by
the daemon from RQ's failed-job registry.

Objectives of the ``agent`` action run the agent loop
(:mod:`swarmd.workers.agent`) instead of one router call: every tool action
is judged by the governor (policy: ``governor.policy`` in the config,
re-read when the file changes), tools run in ``<data dir>/workspaces/<id>``
(data dir from ``$SWARMD_DATA_DIR``, which the daemon sets for the workers it
starts), and the decisions travel to the daemon in the ``finished`` event's
``audit`` list (workers may have no access to the daemon's SQLite).  An
``ask`` parks the objective (:mod:`swarmd.workers.parking`): the park record
and the ``finished`` event with state ``awaiting_approval`` are written in
one Redis transaction.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

from loguru import logger
from rq import get_current_job

from swarmd import constants as K
from swarmd.config import Config, load_config
from swarmd.costs import Budget
from swarmd.governor import AuditBuffer, Governor, Policy, PolicyError, load_policy
from swarmd.paths import data_dir
from swarmd.router import RequestError, Router
from swarmd.workers import parking
from swarmd.workers.agent import AGENT_ACTION, run_agent, workspace_dir

_ROUTER: Router | None = None
_ROUTER_LOCK = threading.Lock()
_POLICY: tuple[tuple[str, int], Policy] | None = None
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def init_router(config: Config | None = None, redis=None) -> Router:
    """Build (once per process) the router this worker's jobs use.

    ``config`` defaults to :func:`swarmd.config.load_config` (``$SWARMD_CONFIG``).
    Ledger rows travel to the daemon inside the ``finished`` event, so the
    worker's router writes no ledger of its own (workers may run on hosts
    that have no access to the daemon's SQLite file).  ``redis`` (default: the
    current RQ job's connection, once there is one) gives the router its
    :class:`~swarmd.costs.budgets.Budget`: the caps every worker shares.
    """
    global _ROUTER
    with _ROUTER_LOCK:
        if _ROUTER is None:
            _ROUTER = Router(config or load_config())
        if _ROUTER.budget is None:
            job = get_current_job() if redis is None else None
            redis = redis if redis is not None else (job.connection if job else None)
            if redis is not None:
                _ROUTER.budget = Budget(redis, _ROUTER.config)
        return _ROUTER


def warm_up(router: Router) -> None:
    """Load the starting tier's first model now rather than in the first job."""
    for tier in router.config.escalation.chain[:1]:
        for index, model in enumerate(router.config.tiers[tier][:1]):
            try:
                router._provider(f"{tier}/{model.provider}/{model.model}#{index}", model)
            except Exception as exc:
                logger.warning("warm-up of {} failed: {}", model.model, exc)


def emit(connection, kind: str, objective_id: str, payload: dict) -> None:
    """Append one event to the daemon's event stream (``connection`` may be a pipeline)."""
    connection.xadd(K.EVENT_STREAM, {"kind": kind, "id": objective_id, "payload": json.dumps(payload)})


def policy_for(config: Config) -> Policy:
    """The governor policy named by ``config`` (``governor.policy``, relative
    to the config file), loaded once and re-read when the file changes.
    Raises :class:`swarmd.governor.PolicyError` for a missing or invalid file."""
    global _POLICY
    path = config.governor.policy_path(config.source)
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        raise PolicyError(str(path), "", "a readable policy file", exc.strerror or str(exc)) from None
    with _ROUTER_LOCK:
        if _POLICY is None or _POLICY[0] != stamp:
            _POLICY = (stamp, load_policy(path))
        return _POLICY[1]


def _failpoint_die_once(objective_id: str) -> None:
    """Tests only: with ``SWARMD_FAILPOINT=worker_mid_job`` the first job to
    get here (``$SWARMD_FAILPOINT_MARK`` does not exist yet) creates that file
    and SIGKILLs its own worker, as a crash or OOM kill would mid-job."""
    if os.environ.get("SWARMD_FAILPOINT") != "worker_mid_job":
        return
    mark = os.environ.get("SWARMD_FAILPOINT_MARK")
    if mark and not os.path.exists(mark):
        with open(mark, "w") as fh:
            fh.write(objective_id)
        logger.warning("failpoint worker_mid_job: killing this worker with SIGKILL during {}", objective_id)
        os.kill(os.getpid(), signal.SIGKILL)


def run_objective(objective: dict) -> dict:
    """RQ job: route ``objective`` (a validated objective dict) and report it.

    Returns ``{"state": "done"|"unresolved"|"failed", "result": {...},
    "attempts": [...], "action": str}``; the same dict goes into the
    ``finished`` event.  ``failed`` here means the request itself cannot be
    served (e.g. the action vanished from the config after a reload).
    """
    job = get_current_job()
    conn = job.connection if job else None
    oid = objective["id"]
    _failpoint_die_once(oid)
    if objective.get("action") == AGENT_ACTION:
        return run_agent_objective(objective, conn)
    if conn is not None:
        emit(conn, "started", oid, {"worker": WORKER_NAME, "ts": time.time()})
    router = init_router()
    try:
        result = router.route(objective["action"], objective["input"], tuple(objective.get("labels") or ()),
                              objective_id=oid, request_id=oid, max_cost_usd=objective.get("max_cost_usd"))
        state = "done" if result.status == "accepted" else "unresolved"
        payload = {"state": state, "result": result.to_json(), "attempts": result.attempts_json()}
    except RequestError as exc:
        payload = {"state": "failed", "result": {"reason": str(exc)}, "attempts": []}
    payload.update(action=objective["action"], ts=time.time(), worker=WORKER_NAME)
    if conn is not None:
        emit(conn, "finished", oid, payload)
    return payload


def run_agent_objective(objective: dict, conn) -> dict:
    """Run (or resume) an ``agent`` objective and report it; returns the
    ``finished`` payload: ``{"state", "result", "attempts", "audit", "action",
    "ts", "worker"}`` (``state`` may be ``awaiting_approval``).

    ``conn``: the job's Redis connection (``None`` outside RQ: nothing is
    reported and an ``ask`` cannot be parked, but the payload says so).
    """
    oid = objective["id"]
    record = parking.load(conn, oid) if conn is not None else None
    if record is not None and record.get("resolution") is None:
        # Parked already (this job is a re-run of the one that parked it): wait for the human.
        logger.info("objective {} is awaiting approval; nothing to run", oid)
        return {"state": "awaiting_approval", "result": {"status": "awaiting_approval"}, "attempts": [],
                "audit": [], "action": AGENT_ACTION, "ts": time.time(), "worker": WORKER_NAME}
    if conn is not None:
        emit(conn, "started", oid, {"worker": WORKER_NAME, "ts": time.time()})
    router = init_router()
    audit = AuditBuffer()
    try:
        governor = Governor(policy_for(router.config), audit=audit)
    except PolicyError as exc:
        outcome = None
        payload = {"state": "failed", "result": {"status": "failed", "reason": f"governor policy unusable: {exc}"},
                   "attempts": []}
    else:
        workspace = workspace_dir(data_dir(), oid)
        outcome = run_agent(objective, router, governor, router.config.governor, workspace, resume=record)
        payload = {"state": outcome.state, "result": outcome.result, "attempts": outcome.attempts}
    payload.update(audit=audit.drain(), action=AGENT_ACTION, ts=time.time(), worker=WORKER_NAME)
    if conn is None:
        return payload
    pipe = conn.pipeline()
    if outcome is not None and outcome.pending is not None:
        tool, args, decision = outcome.pending
        run = int(record["run"]) + 1 if record else 0
        parking.park(pipe, objective, run, tool, args, decision, outcome.loop)
    elif record is not None:
        parking.clear(pipe, oid)
    emit(pipe, "finished", oid, payload)
    pipe.execute()
    return payload
