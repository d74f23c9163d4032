"""The web dashboard at ``/``: server-rendered Jinja2 pages, one router per page group (:data:`ROUTERS`).

Pages: overview (``/``: tier health too), objectives (``/objectives`` with filters;
``/objectives/{id}``: attempts, skipped tiers and why, the agent's steps with the governor's
decision and rule, cancel / retry / feedback buttons), approvals (approve / deny), costs (spend by
tier over time, an SVG at ``/costs/spend.svg``, and the cost report), memory (the quality
gate per group), traces (``/traces``, ``/traces/{id}``: execution traces and their steps).
The only script is ``static/live.js`` (from the package: no CDN, no build step): an
``EventSource`` on ``/api/v1/events`` that updates state cells and adds new objectives' rows.

Sign-in: ``/login`` takes the API token once and sets :data:`SESSION_COOKIE` (HttpOnly,
SameSite=Strict, an HMAC of the token, so rotating the token ends every session).  Every
dashboard POST checks the form's CSRF field (also derived from the token).  The data come
from the same functions as the API routes and ``swarmctl``.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from redis.exceptions import RedisError

from swarmd.agent import approvals
from swarmd.api.context import ApiContext, context
from swarmd.agent.traces import TraceError, TraceStore
from swarmd.daemon.views import gate_report, objective_detail, status_data, trace_detail, trace_list
from swarmd.costs.ledger_data import LedgerReadError, read_rows
from swarmd.costs.report import build_report, parse_since, render_markdown, spend_over_time
from swarmd.daemon import control
from swarmd.errors import BadInput, Unreachable
from swarmd.memory.feedback import Feedback, apply_feedback
from swarmd.memory.records import Memory
from swarmd.objectives import STATES

HERE = Path(__file__).parent
#: The session cookie's name.
SESSION_COOKIE = "swarmd_session"
#: Pages in the navigation bar: (path, name).
PAGES = (("/", "Overview"), ("/objectives", "Objectives"), ("/approvals", "Approvals"), ("/costs", "Costs"),
         ("/memory", "Memory"), ("/traces", "Traces"))
#: Seconds the session cookie lives in the browser.
SESSION_MAX_AGE_S = 7 * 86400

templates = Jinja2Templates(directory=str(HERE / "templates"))
#: ``{{ unix_seconds|utc }}``: ``HH:MM:SS`` (UTC), as ``swarmctl show`` and ``status`` print the end of a cool-down.
templates.env.filters["utc"] = lambda ts: time.strftime("%H:%M:%S", time.gmtime(float(ts)))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


#: The shared context, as a route parameter.
CTX = Depends(context)


def page(request: Request, ctx: ApiContext, name: str, here: str, title: str, **values) -> HTMLResponse:
    """The template ``name`` rendered with the navigation bar (``here`` marked) and the CSRF field."""
    return templates.TemplateResponse(request, name, {"pages": PAGES, "here": here, "title": title,
                                                      "csrf": ctx.tokens.csrf(), **values})


def check_csrf(ctx: ApiContext, csrf: str) -> None:
    """Raise 403 unless ``csrf`` is the form field the current token gives."""
    if not ctx.tokens.csrf_ok(csrf):
        raise HTTPException(403, "the form's CSRF field is missing or stale: reload the page")


def back(path: str) -> RedirectResponse:
    """303 to ``path`` (after a form's POST)."""
    return RedirectResponse(path, status_code=303)


# ----------------------------------------------------------------------------- sign-in and the script

session_router = APIRouter(include_in_schema=False)


@session_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"error": None})


@session_router.post("/login")
def login(request: Request, token: str = Form(""), ctx: ApiContext = CTX):
    if not ctx.tokens.ok(token.strip() or None):
        return templates.TemplateResponse(request, "login.html", {"error": "wrong token"}, status_code=401)
    response = back("/")
    response.set_cookie(SESSION_COOKIE, ctx.tokens.session(), max_age=SESSION_MAX_AGE_S, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@session_router.get("/static/live.js")
def live_js() -> FileResponse:
    return FileResponse(HERE / "static" / "live.js", media_type="text/javascript")


# ----------------------------------------------------------------------------- overview

overview_router = APIRouter(include_in_schema=False)


@overview_router.get("/", response_class=HTMLResponse)
def overview(request: Request, ctx: ApiContext = CTX) -> HTMLResponse:
    store = ctx.store()
    counts = store.counts() if store else {s: 0 for s in STATES}
    recent = store.page(limit=20)[0] if store else []
    last_minute = store.page(since=time.time() - 60, limit=1000)[0] if store else []
    try:
        status = status_data(ctx.redis(), ctx.config)     # as GET /api/v1/status: tier health too
    except (RedisError, Unreachable):
        status = None
    return page(request, ctx, "overview.html", "/", "Overview", counts=counts, objectives=recent,
                rate=len(last_minute) / 60, status=status,
                spend=status["spend_today_usd"] if status else 0.0, daily_cap=ctx.config.budgets.daily_usd)


# ----------------------------------------------------------------------------- objectives

objectives_router = APIRouter(include_in_schema=False)


@objectives_router.get("/objectives", response_class=HTMLResponse)
def objectives(request: Request, state: str = "", action: str = "", since: str = "", q: str = "",
               cursor: str = "", ctx: ApiContext = CTX) -> HTMLResponse:
    store = ctx.store()
    rows, nxt = [], None
    if store is not None:
        try:
            rows, nxt = store.page(state=state or None, action=action or None,
                                   since=parse_since(since) if since else None, q=q or None, limit=50,
                                   cursor=cursor or None)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    query = urlencode({k: v for k, v in (("state", state), ("action", action), ("since", since), ("q", q),
                                          ("cursor", nxt)) if v})
    return page(request, ctx, "objectives.html", "/objectives", "Objectives", objectives=rows, states=STATES,
                state=state, action=action, since=since, q=q, next=nxt, next_query=query)


@objectives_router.get("/objectives/{objective_id}", response_class=HTMLResponse)
def objective(request: Request, objective_id: str, ctx: ApiContext = CTX) -> HTMLResponse:
    record = objective_detail(ctx.store(), ctx.redis(), objective_id)     # as GET /api/v1/objectives/{id}
    return page(request, ctx, "objective.html", "/objectives", f"Objective {objective_id}", o=record)


@objectives_router.post("/objectives/{objective_id}/cancel")
def cancel(objective_id: str, csrf: str = Form(""), ctx: ApiContext = CTX):
    check_csrf(ctx, csrf)
    control.cancel(ctx.redis(), ctx.store(), objective_id, "dashboard", ctx.config, ctx.data_dir)
    return back(f"/objectives/{objective_id}")


@objectives_router.post("/objectives/{objective_id}/retry")
def retry(objective_id: str, csrf: str = Form(""), ctx: ApiContext = CTX):
    check_csrf(ctx, csrf)
    new = control.retry(ctx.redis(), ctx.store(), objective_id, ctx.config)
    return back(f"/objectives/{new['id']}")


@objectives_router.post("/objectives/{objective_id}/feedback")
def feedback(objective_id: str, csrf: str = Form(""), verdict: str = Form(""), ctx: ApiContext = CTX):
    check_csrf(ctx, csrf)
    if verdict not in ("good", "bad"):
        raise BadInput(f"verdict must be good or bad, found {verdict[:40]!r}")
    store = ctx.store()
    memory = Memory(ctx.db)
    try:
        apply_feedback(memory, store.get, [Feedback(objective_id, None, verdict, None,
                                                    where=f"objective {objective_id}")])
    finally:
        memory.close()
    return back(f"/objectives/{objective_id}")


# ----------------------------------------------------------------------------- approvals

approvals_router = APIRouter(include_in_schema=False)


@approvals_router.get("/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, ctx: ApiContext = CTX) -> HTMLResponse:
    now = time.time()
    from_api = ctx.approval_rows(now)
    return page(request, ctx, "approvals.html", "/approvals", "Approvals", approvals=from_api)


def resolve(ctx: ApiContext, objective_id: str, csrf: str, resolution: str):
    """Approve or reject (``resolution``) a parked objective from a form; 409 when it is not parked."""
    check_csrf(ctx, csrf)
    try:
        approvals.resolve(ctx.redis(), objective_id, resolution, "dashboard", ctx.config)
    except approvals.NotParked as exc:
        raise control.Ended(str(exc)) from None
    return back("/approvals")


@approvals_router.post("/approvals/{objective_id}/approve")
def approve(objective_id: str, csrf: str = Form(""), ctx: ApiContext = CTX):
    return resolve(ctx, objective_id, csrf, "approve")


@approvals_router.post("/approvals/{objective_id}/deny")
def deny(objective_id: str, csrf: str = Form(""), ctx: ApiContext = CTX):
    return resolve(ctx, objective_id, csrf, "reject")


# ----------------------------------------------------------------------------- costs

costs_router = APIRouter(include_in_schema=False)


@costs_router.get("/costs", response_class=HTMLResponse)
def costs(request: Request, since: str = "1d", ctx: ApiContext = CTX) -> HTMLResponse:
    try:
        start = parse_since(since)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    markdown = render_markdown(build_report(ctx.db, ctx.config, start, time.time())) if ctx.db.exists() else None
    return page(request, ctx, "costs.html", "/costs", "Costs", markdown=markdown, window=since,
                chart=f"/costs/spend.svg?{urlencode({'since': since})}")


@costs_router.get("/costs/spend.svg")
def spend_chart(since: str = "1d", ctx: ApiContext = CTX) -> Response:
    """Spend by tier over ``since`` (e.g. ``1d``) until now, :data:`SPEND_BUCKETS` stacked bars (SVG)."""
    from swarmd.costs.charts import spend_svg      # matplotlib: loaded when a chart is first drawn
    try:
        start, now = parse_since(since), time.time()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        rows = read_rows(ctx.db, start, now) if ctx.db.exists() else []
    except LedgerReadError:      # a store without a ledger yet
        rows = []
    return Response(spend_svg(spend_over_time(rows, start, max(now, start + 1))), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


# ----------------------------------------------------------------------------- traces

traces_router = APIRouter(include_in_schema=False)


@traces_router.get("/traces", response_class=HTMLResponse)
def traces(request: Request, ctx: ApiContext = CTX) -> HTMLResponse:
    store = TraceStore(ctx.db) if ctx.db.exists() else None
    try:
        rows = trace_list(store, all_versions=True) if store is not None else []
    finally:
        if store is not None:
            store.close()
    return page(request, ctx, "traces.html", "/traces", "Execution traces", traces=rows)


@traces_router.get("/traces/{trace_id}", response_class=HTMLResponse)
def trace(request: Request, trace_id: str, version: int | None = None, ctx: ApiContext = CTX) -> HTMLResponse:
    store = TraceStore(ctx.db) if ctx.db.exists() else None
    try:
        found = trace_detail(store, trace_id, version) if store is not None else None
    except TraceError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        if store is not None:
            store.close()
    if found is None:
        raise HTTPException(404, f"no trace {trace_id!r}")
    return page(request, ctx, "trace.html", "/traces", f"Trace {trace_id} v{found['version']}", t=found)


# ----------------------------------------------------------------------------- memory

memory_router = APIRouter(include_in_schema=False)


@memory_router.get("/memory", response_class=HTMLResponse)
def memory(request: Request, ctx: ApiContext = CTX) -> HTMLResponse:
    total, rows, _unverified = gate_report(str(ctx.db), ctx.config) if ctx.db.exists() else (0, [], [])
    return page(request, ctx, "memory.html", "/memory", "Memory: the quality gate on verified answers",
                total=total, gates=rows, pct=_pct)


#: The dashboard's routers, one per page group, in the order the app includes them.
ROUTERS = (session_router, overview_router, objectives_router, approvals_router, costs_router, traces_router,
           memory_router)
