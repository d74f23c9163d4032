"""What the API's routes share: :class:`ApiContext`, reached through the :func:`context` dependency.

:func:`swarmd.api.app.create_app` keeps one :class:`ApiContext` on ``app.state.ctx``; every
route (API and dashboard) takes it as ``ctx: ApiContext = Depends(context)``.  The context
opens the daemon's Redis client, store and metrics lazily and :meth:`ApiContext.close`
closes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fastapi import Request
from redis import Redis

from swarmd.agent import approvals
from swarmd.api.auth import TokenCheck
from swarmd.config import Config
from swarmd.daemon.metrics import DaemonMetrics
from swarmd.daemon.store import Store
from swarmd.errors import Unreachable


@dataclass
class ApiContext:
    """What the routes share: the daemon's current ``config`` (replaced when a SIGHUP
    reloads it: :meth:`swarmd.api.server.ApiServer.reload`; read it per request), its data
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
        """Objectives awaiting approval, oldest first, as :func:`approval_row` shows them."""
        return [approval_row(r, now) for r in approvals.list_parked(self.redis())]

    def close(self) -> None:
        """Close the Redis client and the store."""
        if self._redis is not None:
            self._redis.close()
        if self._store is not None:
            self._store.close()


async def context(request: Request) -> ApiContext:
    """The FastAPI dependency every route takes: the app's :class:`ApiContext` (``app.state.ctx``)."""
    return request.app.state.ctx


def approval_row(record: dict, now: float) -> dict:
    """One parked objective as the API shows it: the proposed action, its
    workspace, the governor's rule and reason; ``age_s`` in seconds since it was parked."""
    objective = record.get("objective") or {}
    return {"id": record["id"], "action": objective.get("action"), "input": objective.get("input"),
            "tool": record.get("tool"), "args": record.get("args"), "rule": record.get("rule"),
            "reason": record.get("reason"), "site": record.get("site"),
            "workspace": (record.get("loop") or {}).get("workspace"),
            "parked_at": record.get("parked_at"), "age_s": round(now - float(record.get("parked_at") or now), 1)}
