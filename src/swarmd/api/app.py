"""The API app: :func:`create_app` over one :class:`ApiContext`, routes in :mod:`swarmd.api.routes`.

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

from http.cookies import CookieError, SimpleCookie

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from redis.exceptions import RedisError

from swarmd.agent import approvals
from swarmd.api import dashboard, routes
from swarmd.api.auth import TokenCheck
from swarmd.api.context import ApiContext
from swarmd.api.dashboard import SESSION_COOKIE
from swarmd.api.routes import PREFIX
from swarmd.daemon import control
from swarmd.errors import BadInput, Unreachable
from swarmd.validation import InputError

__all__ = ["ApiContext", "BearerAuth", "PREFIX", "create_app"]


# ----------------------------------------------------------------------------- errors


async def _batch(_request: Request, exc: control.BatchError):
    return JSONResponse({"detail": exc.as_json()}, status_code=422)


async def _bad(_request: Request, exc: BadInput):
    status = 404 if isinstance(exc, (control.NotFound, approvals.NotParked)) else \
        409 if isinstance(exc, control.Ended) else 422 if isinstance(exc, InputError) else 400
    if isinstance(exc, InputError):
        return JSONResponse({"detail": [{"field": p.key, "expected": p.expected, "found": p.found}
                                        for p in exc.problems]}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _unreachable(_request: Request, exc: Unreachable):
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _redis_down(_request: Request, exc: RedisError):
    return JSONResponse({"detail": f"the daemon's Redis failed: {type(exc).__name__}"}, status_code=503)


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
    """The FastAPI application over ``ctx`` (see the module docstring); the routes reach
    ``ctx`` as ``app.state.ctx`` through :func:`swarmd.api.context.context`."""
    app = FastAPI(title="swarmd", version="1", openapi_url=f"{PREFIX}/openapi.json", docs_url=None, redoc_url=None,
                  description="Operate swarmd: submit, list, cancel and retry objectives; approvals, "
                              "status, costs, the quality gate's state, live state changes.")
    app.state.ctx = ctx
    app.add_exception_handler(control.BatchError, _batch)
    app.add_exception_handler(BadInput, _bad)
    app.add_exception_handler(Unreachable, _unreachable)
    app.add_exception_handler(RedisError, _redis_down)
    for router in routes.ROUTERS:
        app.include_router(router)
    for router in dashboard.ROUTERS:
        app.include_router(router)
    app.add_middleware(BearerAuth, tokens=ctx.tokens)
    app.include_router(routes.metrics_router)
    return app
