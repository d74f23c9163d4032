"""The API's routes: :func:`create_app` over one :class:`ApiContext`.

Under ``/api/v1`` (plus ``/metrics``), each needing ``Authorization: Bearer TOKEN`` (else 401):
``POST /objectives`` (202 ``{"ids"}``; 422 naming every bad field and index), ``GET
/objectives`` (filters, cursor), ``GET /objectives/{id}`` (as ``swarmctl show --json``; 404),
``POST /objectives/{id}/cancel|retry|feedback`` (409 when the state forbids it), ``GET
/status``, ``GET /approvals``, ``POST /approvals/{id}/approve|deny``, ``GET /costs``, ``GET
/memory``, ``GET /traces[/{id}]``, ``GET /events`` (server-sent ``state`` events).  The
dashboard (:mod:`swarmd.api.dashboard`) is at ``/``: its session cookie is accepted on GETs
and its own CSRF-checked forms, never on ``/api/`` POSTs.  Validation and control are the
functions ``swarmctl`` runs.  Errors are JSON ``{"detail": ...}``; Redis not answering is
503.  Each route in full: docs/api.md and docs/design.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from http.cookies import CookieError, SimpleCookie
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.agent import approvals
from swarmd.api.auth import TokenCheck
from swarmd.api.dashboard import SESSION_COOKIE, dashboard_router
from swarmd.cli.memory import gate_report
from swarmd.cli.objectives import status_data
from swarmd.cli.traces import TraceStore, trace_detail, trace_list
from swarmd.config import Config
from swarmd.costs.report import build_report, parse_since
from swarmd.daemon import control
from swarmd.daemon.metrics import DaemonMetrics
from swarmd.errors import BadInput, Unreachable
from swarmd.memory.feedback import Feedback, apply_feedback
from swarmd.memory.records import Memory
from swarmd.objectives import STATES, Objective
from swarmd.daemon.store import Store
from swarmd.validation import InputError, validate as validate_model

PREFIX = "/api/v1"
#: Error responses of the routes, for the OpenAPI schema (docs/api.md).
_ERR = {400: {"description": "the body is not JSON"}, 404: {"description": "no objective with that id"},
        409: {"description": "the objective's state does not allow it"},
        422: {"description": "bad input: every bad field (and index)"},
        503: {"description": "the daemon's Redis does not answer"}}


def _errors(*codes: int) -> dict:
    return {code: _ERR[code] for code in codes}
#: Seconds an SSE connection waits for a stream entry before a keep-alive comment.
SSE_BLOCK_S = 15.0


@dataclass
class ApiContext:
    """What the routes share: the ``config`` the daemon started with, its data
    directory, its store file, and ``redis_url()`` (the daemon's Redis; called
    until it returns a URL: a daemon that starts its own redis-server writes
    ``redis.url`` only once it runs)."""

    config: Config
    data_dir: Path
    db: Path
    redis_url: Callable[[], str | None]
    tokens: TokenCheck = field(init=False)
    _redis: Redis | None = field(default=None, init=False)
    _url: str | None = field(default=None, init=False)
    _store: Store | None = field(default=None, init=False)
    _metrics: DaemonMetrics | None = field(default=None, init=False)

    def __post_init__(self):
        self.tokens = TokenCheck(self.data_dir)

    def redis(self) -> Redis:
        """The daemon's Redis client (a new one when ``redis_url()`` changes: a daemon
        that starts its own server rewrites ``redis.url``); raises
        :class:`~swarmd.errors.Unreachable` while no URL is known."""
        url = self.redis_url()
        if not url:
            raise Unreachable("the daemon's Redis is not known yet (no redis.url in the data directory)")
        if self._redis is None or url != self._url:
            if self._redis is not None:
                self._redis.close()
            self._redis = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
            self._url = url
        return self._redis

    def store(self) -> Store | None:
        """The daemon's store (opened at first use), or ``None`` before the daemon created it."""
        if self._store is None and self.db.exists():
            self._store = Store(self.db)
        return self._store

    def metrics(self) -> DaemonMetrics:
        """Prometheus metrics over the store and Redis (ledger rows counted from the file's start)."""
        if self._metrics is None:
            self._metrics = DaemonMetrics(self.db, self.redis(), self.store(), from_start=True)
        return self._metrics

    def approval_rows(self, now: float) -> list[dict]:
        """Objectives awaiting approval, oldest first, as :func:`_approval_row` shows them."""
        return [_approval_row(r, now) for r in approvals.list_parked(self.redis())]

    def close(self) -> None:
        """Close the Redis client and the store."""
        if self._redis is not None:
            self._redis.close()
        if self._store is not None:
            self._store.close()


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


def _approval_row(record: dict, now: float) -> dict:
    """One parked objective as the API shows it: the proposed action, its
    workspace, the governor's rule and reason."""
    objective = record.get("objective") or {}
    return {"id": record["id"], "action": objective.get("action"), "input": objective.get("input"),
            "tool": record.get("tool"), "args": record.get("args"), "rule": record.get("rule"),
            "reason": record.get("reason"), "site": record.get("site"),
            "workspace": (record.get("loop") or {}).get("workspace"),
            "parked_at": record.get("parked_at"), "age_s": round(now - float(record.get("parked_at") or now), 1)}


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


# ----------------------------------------------------------------------------- the app


class BearerAuth:
    """ASGI middleware: every HTTP request (any path, the schema and unknown
    paths included) needs ``Authorization: Bearer TOKEN`` matching ``tokens``
    (:class:`~swarmd.api.auth.TokenCheck`), else 401 before any route runs."""

    def __init__(self, app, tokens: TokenCheck):
        self.app, self.tokens = app, tokens

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self._allowed(scope):
            path = scope.get("path", "")
            if scope.get("method") == "GET" and not path.startswith(("/api/", "/metrics")):
                response = RedirectResponse("/login", status_code=303)      # a person at the dashboard
            else:
                response = JSONResponse({"detail": "missing or wrong bearer token (Authorization: Bearer TOKEN; "
                                                   "`swarmctl api token` prints it)"}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope) -> bool:
        """The bearer token anywhere; the dashboard's session cookie on GETs and on the
        dashboard's own forms (not ``/api/``: those check their CSRF field); ``/login`` always."""
        path, method = scope.get("path", ""), scope.get("method")
        if path == "/login":
            return True
        headers = dict(scope.get("headers") or [])
        scheme, _sep, presented = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and self.tokens.ok(presented.strip() or None):
            return True
        if method != "GET" and path.startswith(("/api/", "/metrics")):
            return False
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
        except CookieError:
            return False
        session = cookies.get(SESSION_COOKIE)
        return session is not None and self.tokens.session_ok(session.value)


def create_app(ctx: ApiContext) -> FastAPI:
    """The FastAPI application over ``ctx`` (see the module docstring)."""

    app = FastAPI(title="swarmd", version="1", openapi_url=f"{PREFIX}/openapi.json", docs_url=None, redoc_url=None,
                  description="Operate swarmd: submit, list, cancel and retry objectives; approvals, "
                              "status, costs, the quality gate's state, live state changes.")

    @app.exception_handler(control.BatchError)
    async def _batch(_request: Request, exc: control.BatchError):
        return JSONResponse({"detail": exc.as_json()}, status_code=422)

    @app.exception_handler(BadInput)
    async def _bad(_request: Request, exc: BadInput):
        status = 404 if isinstance(exc, (control.NotFound, approvals.NotParked)) else \
            409 if isinstance(exc, control.Ended) else 422 if isinstance(exc, InputError) else 400
        if isinstance(exc, InputError):
            return JSONResponse({"detail": [{"field": p.key, "expected": p.expected, "found": p.found}
                                            for p in exc.problems]}, status_code=422)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(Unreachable)
    async def _unreachable(_request: Request, exc: Unreachable):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RedisError)
    async def _redis_down(_request: Request, exc: RedisError):
        return JSONResponse({"detail": f"the daemon's Redis failed: {type(exc).__name__}"}, status_code=503)

    api = APIRouter(prefix=PREFIX)

    @api.post("/objectives", status_code=202, response_model=Ids, openapi_extra=_OBJECTIVES_BODY,
              responses=_errors(400, 422, 503))
    async def submit(request: Request) -> Ids:
        """Validate one objective or a list, as ``swarmctl submit`` does, and put them on the
        objective stream (all or nothing)."""
        body = await _json_body(request)
        raws = body if isinstance(body, list) else [body]
        if not raws:
            raise HTTPException(422, [{"index": None, "field": "", "expected": "at least one objective",
                                       "found": "an empty list"}])
        objectives = control.validate_batch(raws, ctx.config)
        return Ids(ids=control.push(ctx.redis(), objectives, ctx.config))

    @api.get("/objectives", response_model=Page, responses=_errors(422))
    def list_objectives(state: str | None = None, action: str | None = None, since: str | None = None,
                        q: str | None = None, limit: int = Query(50, ge=1, le=1000),
                        cursor: str | None = None) -> Page:
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

    @api.get("/objectives/{objective_id}", responses=_errors(404, 503))
    def show(objective_id: str) -> dict:
        """One objective: the store's record with its attempts (as ``swarmctl show --json``),
        or its Redis state while it is not yet stored."""
        return control.lookup(ctx.store(), ctx.redis(), objective_id)

    @api.post("/objectives/{objective_id}/cancel", response_model=Cancelled, responses=_errors(404, 409, 503))
    def cancel(objective_id: str) -> Cancelled:
        """Cancel an objective that has not ended (409 when it has)."""
        return Cancelled(**control.cancel(ctx.redis(), ctx.store(), objective_id, "api", ctx.config))

    @api.post("/objectives/{objective_id}/retry", status_code=202, response_model=Retried,
              responses=_errors(404, 409, 422, 503))
    def retry(objective_id: str) -> Retried:
        """Run a failed, unresolved or cancelled objective again as a new objective (the same new one
        every time)."""
        return Retried(**control.retry(ctx.redis(), ctx.store(), objective_id, ctx.config))

    @api.post("/objectives/{objective_id}/feedback",
              openapi_extra=_body_schema(FeedbackBody.model_json_schema()), responses=_errors(400, 404, 422))
    async def feedback(objective_id: str, request: Request) -> dict:
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

    @api.get("/status")
    def status() -> dict:
        """Daemon liveness, queues, workers, objectives by state, today's spend (``swarmctl status --json``)."""
        return status_data(ctx.redis())

    @api.get("/approvals")
    def list_approvals() -> dict:
        """Objectives awaiting approval, oldest first: the proposed action, the workspace, the governor's reason."""
        return {"approvals": ctx.approval_rows(time.time())}

    def _resolve(objective_id: str, resolution: str) -> dict:
        redis = ctx.redis()
        try:
            record = approvals.resolve(redis, objective_id, resolution, "api", ctx.config)
        except approvals.NotParked:
            control.lookup(ctx.store(), redis, objective_id)          # 404 when unknown
            raise control.Ended(f"objective {objective_id!r} is not awaiting approval") from None
        return {"id": objective_id, "resolution": resolution, "job_id": record["job_id"]}

    @api.post("/approvals/{objective_id}/approve", responses=_errors(404, 409, 503))
    def approve(objective_id: str) -> dict:
        """Allow the parked action; the objective is queued again (409 when it is not awaiting approval)."""
        return _resolve(objective_id, "approve")

    @api.post("/approvals/{objective_id}/deny", responses=_errors(404, 409, 503))
    def deny(objective_id: str) -> dict:
        """Deny the parked action; the objective is queued again and goes on without it."""
        return _resolve(objective_id, "reject")

    @api.get("/costs", responses=_errors(404, 422))
    def costs(since: str | None = None, until: str | None = None) -> dict:
        """The cost report of a window (``swarmctl report --json``; default the last day)."""
        now = time.time()
        start, end = _since(since, "since", now - 86400), _since(until, "until", now)
        if end <= start:
            raise HTTPException(422, [{"field": "until", "expected": "after since", "found": until}])
        if not ctx.db.exists():
            raise HTTPException(404, "no store yet: the daemon has not written one")
        return build_report(ctx.db, ctx.config, start, end)

    @api.get("/memory")
    def memory() -> dict:
        """The quality gate on verified answers per (action, labels, tier, model, prompt)
        (``swarmctl memory stats --json``)."""
        if not ctx.db.exists():
            return {"records": 0, "gates": [], "unverified": []}
        total, rows, unverified = gate_report(str(ctx.db), ctx.config)
        return {"records": total, "gates": [r.to_json() for r in rows], "unverified": [g.to_json() for g in unverified]}

    def traces_store() -> TraceStore | None:
        return TraceStore(ctx.db) if ctx.db.exists() else None

    @api.get("/traces")
    def traces(all_versions: bool = False) -> dict:
        """Execution traces, newest first (``swarmctl traces list --json``): the active version of
        each, or every version with ``all_versions=true``."""
        store = traces_store()
        if store is None:
            return {"traces": []}
        try:
            return {"traces": trace_list(store, all_versions)}
        finally:
            store.close()

    @api.get("/traces/{trace_id}", responses=_errors(404, 422))
    def trace(trace_id: str, version: int | None = None) -> dict:
        """One execution trace: its summary and steps (``swarmctl traces show --json``)."""
        store = traces_store()
        try:
            found = trace_detail(store, trace_id, version) if store is not None else None
        finally:
            if store is not None:
                store.close()
        if found is None:
            raise HTTPException(404, f"no trace {trace_id!r}")
        return found

    @api.get("/events", response_class=StreamingResponse)
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: ``event: state`` with ``{"id", "state", "kind", "action"}`` for every objective
        submitted and every state a worker or the control reports, from the moment of connecting."""
        url = ctx.redis_url()
        if not url:
            raise Unreachable("the daemon's Redis is not known yet")

        async def stream():
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

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.include_router(api)
    app.include_router(dashboard_router(ctx))
    app.add_middleware(BearerAuth, tokens=ctx.tokens)

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics (the daemon's series: calls, tokens, cost, latency, queues,
        objectives by state, budgets)."""
        m = ctx.metrics()
        m.refresh()
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return app
