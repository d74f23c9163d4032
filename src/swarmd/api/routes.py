"""The ``/api/v1`` routes (and ``/metrics``): one :class:`~fastapi.APIRouter` per resource.

:data:`ROUTERS` in the order :func:`swarmd.api.app.create_app` includes them (the order of
docs/api.md): objectives, status, approvals, costs, memory, traces, events; then
``metrics_router`` after the dashboard's.  Each
route takes the shared :class:`~swarmd.api.context.ApiContext` through the
:func:`~swarmd.api.context.context` dependency.  The paths, bodies and status codes are
listed in :mod:`swarmd.api.app` and docs/api.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis as AsyncRedis

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.agent import approvals
from swarmd.api.context import ApiContext, context
from swarmd.agent.traces import TraceStore
from swarmd.daemon.views import gate_report, objective_detail, status_data, trace_detail, trace_list
from swarmd.costs.report import build_report, parse_since
from swarmd.daemon import control
from swarmd.errors import Unreachable
from swarmd.memory.feedback import Feedback, apply_feedback
from swarmd.memory.records import Memory
from swarmd.objectives import STATES, Objective
from swarmd.validation import InputError, validate as validate_model

PREFIX = "/api/v1"
#: Error responses of the routes, for the OpenAPI schema (docs/api.md).
_ERR = {400: {"description": "the body is not JSON"}, 404: {"description": "no objective with that id"},
        409: {"description": "the objective's state does not allow it"},
        422: {"description": "bad input: every bad field (and index)"},
        503: {"description": "the daemon's Redis does not answer"}}
#: Seconds an SSE connection waits for a stream entry before a keep-alive comment.
SSE_BLOCK_S = 15.0
#: The shared context, as a route parameter.
CTX = Depends(context)


def _errors(*codes: int) -> dict:
    return {code: _ERR[code] for code in codes}


# ----------------------------------------------------------------------------- schema


class Ids(BaseModel):
    """Objectives accepted for the daemon."""
    ids: list[str]


class Page(BaseModel):
    """One page of objectives, newest first; ``next``: the cursor of the next page, or null."""
    objectives: list[dict[str, Any]]
    next: str | None


class Cancelled(BaseModel):
    """A cancelled objective: its state before, and the RQ job sent RQ's stop-job command (if it was running)."""
    id: str
    was: str | None
    state: Literal["cancelled"]
    stopped_job: str | None


class Retried(BaseModel):
    """The new objective that runs ``retry_of`` again."""
    id: str
    retry_of: str


class FeedbackBody(BaseModel):
    """A person's judgement of an objective's answer, as ``swarmctl feedback`` takes it:
    the right ``answer``, or ``verdict`` good/bad; ``note`` kept with the record."""
    model_config = ConfigDict(extra="forbid")
    answer: str | None = None
    verdict: Literal["good", "bad"] | None = None
    note: str | None = None


def _body_schema(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_OBJECTIVE_SCHEMA = Objective.model_json_schema()
_OBJECTIVES_BODY = _body_schema({"anyOf": [_OBJECTIVE_SCHEMA, {"type": "array", "items": _OBJECTIVE_SCHEMA}]})


# ----------------------------------------------------------------------------- helpers


async def _json_body(request: Request) -> Any:
    """The request body decoded as JSON; 400 when it is not."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"request body is not JSON: {exc}") from None


def _since(text: str | None, name: str, default: float | None = None) -> float | None:
    """``since``/``until`` query values: unix seconds, or ``30m``/``12h``/``7d``/``2w`` ago or a date."""
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_since(text)
    except ValueError as exc:
        raise HTTPException(422, [{"field": name, "expected": "unix seconds, 30m/12h/7d/2w or YYYY-MM-DD[ HH:MM]",
                                   "found": text[:80], "error": str(exc)}]) from None


def _sse_state(stream: str, fields: dict) -> dict | None:
    """The state change a stream entry announces: ``{"id", "state", "kind", "action"}`` (``action``
    when the entry names it, else ``None``), or ``None``."""
    if stream == K.OBJECTIVE_STREAM:
        try:
            objective = json.loads(fields[b"objective"])
            return {"id": objective["id"], "state": "submitted", "kind": "submitted", "action": objective.get("action")}
        except (KeyError, ValueError, TypeError):
            return None
    kind = fields.get(b"kind", b"").decode(errors="replace")
    oid = fields.get(b"id", b"").decode(errors="replace")
    try:
        payload = json.loads(fields.get(b"payload") or b"{}")
    except ValueError:
        payload = {}
    state = {"started": "running", "failed": "failed", "resolved": "queued"}.get(kind) or payload.get("state")
    return {"id": oid, "state": state, "kind": kind, "action": payload.get("action")} if oid and state else None


# ----------------------------------------------------------------------------- objectives

objectives_router = APIRouter(prefix=PREFIX)


@objectives_router.post("/objectives", status_code=202, response_model=Ids, openapi_extra=_OBJECTIVES_BODY,
                        responses=_errors(400, 422, 503))
async def submit(request: Request, ctx: ApiContext = CTX) -> Ids:
    """Validate one objective or a list, as ``swarmctl submit`` does, and put them on the
    objective stream (all or nothing)."""
    body = await _json_body(request)
    raws = body if isinstance(body, list) else [body]
    if not raws:
        raise HTTPException(422, [{"index": None, "field": "", "expected": "at least one objective",
                                   "found": "an empty list"}])
    objectives = control.validate_batch(raws, ctx.config)
    return Ids(ids=control.push(ctx.redis(), objectives, ctx.config))


@objectives_router.get("/objectives", response_model=Page, responses=_errors(422))
def list_objectives(state: str | None = None, action: str | None = None, since: str | None = None,
                    q: str | None = None, limit: int = Query(50, ge=1, le=1000),
                    cursor: str | None = None, ctx: ApiContext = CTX) -> Page:
    """Objectives newest first, filtered (``since``: unix seconds or 30m/12h/7d/2w ago or a date)."""
    if state is not None and state not in STATES:
        raise HTTPException(422, [{"field": "state", "expected": f"one of {', '.join(STATES)}",
                                   "found": state[:80]}])
    store = ctx.store()
    if store is None:
        return Page(objectives=[], next=None)
    try:
        rows, nxt = store.page(state=state, action=action, since=_since(since, "since"), q=q, limit=limit,
                               cursor=cursor)
    except ValueError as exc:
        raise HTTPException(422, [{"field": "cursor", "expected": "a cursor a page returned as next",
                                   "found": (cursor or "")[:80], "error": str(exc)}]) from None
    return Page(objectives=rows, next=nxt)


@objectives_router.get("/objectives/{objective_id}", responses=_errors(404, 503))
def show(objective_id: str, ctx: ApiContext = CTX) -> dict:
    """One objective: the store's record with its attempts and skipped tiers (as ``swarmctl show
    --json``), ``steps``, the governor's decision and rule on each tool action (the audit log),
    and ``trace_used``, the execution trace a follower replayed (``id@vN``) or null; or its
    Redis state while it is not yet stored."""
    return objective_detail(ctx.store(), ctx.redis(), objective_id)


@objectives_router.post("/objectives/{objective_id}/cancel", response_model=Cancelled,
                        responses=_errors(404, 409, 503))
def cancel(objective_id: str, ctx: ApiContext = CTX) -> Cancelled:
    """Cancel an objective that has not ended (409 when it has)."""
    return Cancelled(**control.cancel(ctx.redis(), ctx.store(), objective_id, "api", ctx.config, ctx.data_dir))


@objectives_router.post("/objectives/{objective_id}/retry", status_code=202, response_model=Retried,
                        responses=_errors(404, 409, 422, 503))
def retry(objective_id: str, ctx: ApiContext = CTX) -> Retried:
    """Run a failed, unresolved or cancelled objective again as a new objective (the same new one
    every time)."""
    return Retried(**control.retry(ctx.redis(), ctx.store(), objective_id, ctx.config))


@objectives_router.post("/objectives/{objective_id}/feedback",
                        openapi_extra=_body_schema(FeedbackBody.model_json_schema()),
                        responses=_errors(400, 404, 422))
async def feedback(objective_id: str, request: Request, ctx: ApiContext = CTX) -> dict:
    """Record a person's judgement of the objective's answer in the learning memory
    (``swarmctl feedback``): ``{"answer": LABEL}`` or ``{"verdict": "good"|"bad"}``."""
    body = validate_model(FeedbackBody, await _json_body(request), InputError, file="feedback")
    if (body.answer is None) == (body.verdict is None):
        raise HTTPException(422, [{"field": "answer", "expected": "exactly one of answer and verdict",
                                   "found": "both" if body.answer is not None else "neither"}])
    store = ctx.store()
    if store is None or store.get(objective_id) is None:
        raise HTTPException(404, f"no objective {objective_id!r} in the store")
    memory = Memory(ctx.db)
    try:
        records = apply_feedback(memory, store.get, [Feedback(objective_id, body.answer, body.verdict,
                                                              body.note, where=f"objective {objective_id}")])
    finally:
        memory.close()
    return {"records": len(records), "wrong": sum(r.local_correct is False for r in records)}


# ----------------------------------------------------------------------------- status

status_router = APIRouter(prefix=PREFIX)


@status_router.get("/status")
def status(ctx: ApiContext = CTX) -> dict:
    """Daemon liveness, queues, workers, objectives by state, today's spend, each tier's health and the
    warnings (``swarmctl status --json``)."""
    return status_data(ctx.redis(), ctx.config)


# ----------------------------------------------------------------------------- approvals

approvals_router = APIRouter(prefix=PREFIX)


@approvals_router.get("/approvals")
def list_approvals(ctx: ApiContext = CTX) -> dict:
    """Objectives awaiting approval, oldest first: the proposed action, the workspace, the governor's reason."""
    return {"approvals": ctx.approval_rows(time.time())}


def _resolve(ctx: ApiContext, objective_id: str, resolution: str) -> dict:
    redis = ctx.redis()
    try:
        record = approvals.resolve(redis, objective_id, resolution, "api", ctx.config)
    except approvals.NotParked:
        control.lookup(ctx.store(), redis, objective_id)          # 404 when unknown
        raise control.Ended(f"objective {objective_id!r} is not awaiting approval") from None
    return {"id": objective_id, "resolution": resolution, "job_id": record["job_id"]}


@approvals_router.post("/approvals/{objective_id}/approve", responses=_errors(404, 409, 503))
def approve(objective_id: str, ctx: ApiContext = CTX) -> dict:
    """Allow the parked action; the objective is queued again (409 when it is not awaiting approval)."""
    return _resolve(ctx, objective_id, "approve")


@approvals_router.post("/approvals/{objective_id}/deny", responses=_errors(404, 409, 503))
def deny(objective_id: str, ctx: ApiContext = CTX) -> dict:
    """Deny the parked action; the objective is queued again and goes on without it."""
    return _resolve(ctx, objective_id, "reject")


# ----------------------------------------------------------------------------- costs

costs_router = APIRouter(prefix=PREFIX)


@costs_router.get("/costs", responses=_errors(404, 422))
def costs(since: str | None = None, until: str | None = None, ctx: ApiContext = CTX) -> dict:
    """The cost report of a window (``swarmctl report --json``; default the last day)."""
    now = time.time()
    start, end = _since(since, "since", now - 86400), _since(until, "until", now)
    if end <= start:
        raise HTTPException(422, [{"field": "until", "expected": "after since", "found": until}])
    if not ctx.db.exists():
        raise HTTPException(404, "no store yet: the daemon has not written one")
    return build_report(ctx.db, ctx.config, start, end)


# ----------------------------------------------------------------------------- memory

memory_router = APIRouter(prefix=PREFIX)


@memory_router.get("/memory")
def memory(ctx: ApiContext = CTX) -> dict:
    """The quality gate on verified answers per (action, labels, tier, model, prompt)
    (``swarmctl memory stats --json``)."""
    if not ctx.db.exists():
        return {"records": 0, "gates": [], "unverified": []}
    total, rows, unverified = gate_report(str(ctx.db), ctx.config)
    return {"records": total, "gates": [r.to_json() for r in rows], "unverified": [g.to_json() for g in unverified]}


# ----------------------------------------------------------------------------- traces

traces_router = APIRouter(prefix=PREFIX)


def _traces_store(ctx: ApiContext) -> TraceStore | None:
    return TraceStore(ctx.db) if ctx.db.exists() else None


@traces_router.get("/traces")
def traces(all_versions: bool = False, ctx: ApiContext = CTX) -> dict:
    """Execution traces, newest first (``swarmctl traces list --json``): the active version of
    each, or every version with ``all_versions=true``."""
    store = _traces_store(ctx)
    if store is None:
        return {"traces": []}
    try:
        return {"traces": trace_list(store, all_versions)}
    finally:
        store.close()


@traces_router.get("/traces/{trace_id}", responses=_errors(404, 422))
def trace(trace_id: str, version: int | None = None, ctx: ApiContext = CTX) -> dict:
    """One execution trace: its summary and steps (``swarmctl traces show --json``)."""
    store = _traces_store(ctx)
    try:
        found = trace_detail(store, trace_id, version) if store is not None else None
    finally:
        if store is not None:
            store.close()
    if found is None:
        raise HTTPException(404, f"no trace {trace_id!r}")
    return found


# ----------------------------------------------------------------------------- events

events_router = APIRouter(prefix=PREFIX)


async def _state_stream(url: str, request: Request):
    """The SSE body: ``event: state`` lines for entries added to the objective and event streams
    after connecting, a keep-alive comment after :data:`SSE_BLOCK_S` seconds without one."""
    client = AsyncRedis.from_url(url)
    try:
        ids = {}
        for name in (K.OBJECTIVE_STREAM, Q.EVENT_STREAM):   # where the streams end now: not "$", which
            last = await client.xrevrange(name, count=1)   # would miss what is added before the first read
            ids[name] = last[0][0] if last else "0-0"
        yield ": connected\n\n"
        while not await request.is_disconnected():
            replies = await client.xread(ids, block=int(SSE_BLOCK_S * 1000), count=100)
            if not replies:
                yield ": keep-alive\n\n"
                continue
            for name, entries in replies:
                name = name.decode()
                for entry_id, fields in entries:
                    ids[name] = entry_id
                    change = _sse_state(name, fields)
                    if change is not None:
                        yield f"event: state\ndata: {json.dumps(change)}\n\n"
    except asyncio.CancelledError:
        raise
    finally:
        await client.aclose()


@events_router.get("/events", response_class=StreamingResponse)
async def events(request: Request, ctx: ApiContext = CTX) -> StreamingResponse:
    """Server-sent events: ``event: state`` with ``{"id", "state", "kind", "action"}`` for every objective
    submitted and every state a worker or the control reports, from the moment of connecting."""
    url = ctx.redis_url()
    if not url:
        raise Unreachable("the daemon's Redis is not known yet")
    return StreamingResponse(_state_stream(url, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ----------------------------------------------------------------------------- metrics

metrics_router = APIRouter()


@metrics_router.get("/metrics", response_class=Response)
def metrics(ctx: ApiContext = CTX) -> Response:
    """Prometheus metrics (the daemon's series: calls, tokens, cost, latency, queues,
    objectives by state, budgets)."""
    m = ctx.metrics()
    m.refresh()
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


#: The API's routers, in the order the app includes them (``metrics_router`` after the dashboard's).
ROUTERS = (objectives_router, status_router, approvals_router, costs_router, memory_router, traces_router,
           events_router)
