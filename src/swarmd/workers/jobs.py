"""The RQ job that runs one objective through the router.

Runs inside a worker process (see :mod:`swarmd.workers.main`).  The router,
and with it the in-process model, is built once per process and reused by
every job.  The job reports to the daemon through the event stream
(:data:`swarmd.constants.EVENT_STREAM`): ``started`` when it begins,
``finished`` with the result, attempts and their ledger data when it ends.  A
model failure is an ``unresolved`` result, never a crashed job; a crashed job
(a bug, a timeout) is retried by RQ and, once retries are spent, reported by
the daemon from RQ's failed-job registry.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from loguru import logger
from rq import get_current_job

from swarmd import constants as K
from swarmd.config import Config, load_config
from swarmd.router import Budget, RequestError, Router

_ROUTER: Router | None = None
_ROUTER_LOCK = threading.Lock()
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def init_router(config: Config | None = None, redis=None) -> Router:
    """Build (once per process) the router this worker's jobs use.

    ``config`` defaults to :func:`swarmd.config.load_config` (``$SWARMD_CONFIG``).
    Ledger rows travel to the daemon inside the ``finished`` event, so the
    worker's router writes no ledger of its own (workers may run on hosts
    that have no access to the daemon's SQLite file).  ``redis`` (default: the
    current RQ job's connection, once there is one) gives the router its
    :class:`~swarmd.router.budgets.Budget`: the caps every worker shares.
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
    """Append one event to the daemon's event stream."""
    connection.xadd(K.EVENT_STREAM, {"kind": kind, "id": objective_id, "payload": json.dumps(payload)})


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
