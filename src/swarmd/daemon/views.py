"""Read models shared by ``swarmctl`` and the HTTP API: one function per document both show.

* :func:`status_data` — ``swarmctl status --json``, ``GET /api/v1/status``, the overview page;
* :func:`objective_detail` — ``GET /api/v1/objectives/{id}`` and the one-objective page: the
  store's record (attempts, skipped tiers) plus the agent's steps from the audit log;
* :func:`gate_report` — ``swarmctl memory stats``, ``GET /api/v1/memory``, the memory page;
* :func:`trace_list` / :func:`trace_detail` — ``swarmctl traces``, ``GET /api/v1/traces``.

They sit below both front ends (cli and api, which never import each other) and only
read: the store, the daemon's Redis, the config.
"""

from __future__ import annotations

import json
import time

from rq import Worker

from swarmd import constants as K
from swarmd.agent.traces import TraceError, TraceStore
from swarmd.costs.ledger import TRACE_TIER
from swarmd.daemon.control import lookup
from swarmd.daemon.health import health_warnings, tier_health
from swarmd.daemon.store import Store
from swarmd.memory.gate import GateBook
from swarmd.memory.records import Memory
from swarmd.memory.stats import gate_stats
from swarmd.memory.verification import unverified_gates
from swarmd.objectives import STATES
from swarmd.queue import queue_depths


def status_data(client, config=None) -> dict:
    """The ``status --json`` document (see ``swarmctl status --help``), from the
    daemon's heartbeat hash, RQ's worker registry and the queue lengths; with a
    ``config``, ``tiers``: each model's health (:func:`swarmd.daemon.health.tier_health`),
    the oversubscription warning (:func:`~swarmd.daemon.health.health_warnings`) and
    ``budgets``: its caps ``{"daily_usd", "monthly_usd"}`` (USD, ``None``: no cap).
    Raises ``redis.RedisError`` when Redis cannot be read."""
    hb = {k.decode(): v.decode() for k, v in client.hgetall(K.HEARTBEAT).items()}
    now = time.time()
    alive = bool(hb) and now - float(hb.get("ts", 0)) < 3 * float(hb.get("interval_s", 2)) + 1
    workers = []
    for w in Worker.all(connection=client):
        workers.append({"name": w.name, "state": w.get_state(), "current_job": w.get_current_job_id(),
                        "queues": [q.name for q in w.queues]})
    return {
        "daemon": {"alive": alive, "pid": int(hb["pid"]) if hb.get("pid") else None, "host": hb.get("host"),
                   "uptime_s": round(now - float(hb["started_at"]), 1) if alive else 0.0},
        "queues": queue_depths(client),
        "workers": workers,
        "objectives": json.loads(hb["counts"]) if hb.get("counts") else {s: 0 for s in STATES},
        "spend_today_usd": float(hb.get("spend_today_usd", 0.0)),
        "by_tier_today": json.loads(hb["by_tier_today"]) if hb.get("by_tier_today") else {},
        "malformed": {k.decode().removeprefix("malformed_"): int(v) for k, v in client.hgetall(K.STATS).items()
                      if k.startswith(b"malformed_")},
        "warnings": health_warnings(config, len(workers)),
        "tiers": tier_health(config, client, [w["name"] for w in workers]) if config is not None else [],
        "budgets": ({"daily_usd": config.budgets.daily_usd, "monthly_usd": config.budgets.monthly_usd}
                    if config is not None else None),
    }


def objective_detail(store: Store | None, client, objective_id: str) -> dict:
    """One objective as the API and the dashboard show it: :func:`swarmd.daemon.control.lookup`
    (the store's record with ``attempts`` and ``skipped``, else its Redis state) plus ``steps``:
    the governor's decisions on its tool actions, oldest first (:meth:`Store.audit_steps`: ``tool``,
    ``args``, ``decision`` allow/deny/ask, ``rule``, ``reason``; ``[]`` for a label objective)
    and ``trace_used``: ``"<trace id>@v<version>"`` of the execution trace a follower replayed
    (its attempt at tier ``TRACE``), else None.
    Raises :class:`~swarmd.daemon.control.NotFound`."""
    record = lookup(store, client, objective_id)
    record.setdefault("skipped", [])
    record["steps"] = store.audit_steps(objective_id) if store is not None else []
    record["trace_used"] = next((a.get("model") for a in record.get("attempts") or []
                                 if a.get("tier") == TRACE_TIER), None)
    return record


def gate_report(db: str, config) -> tuple[int, list, list]:
    """``(verified records, rows, unverified gates)`` of the store ``db``: the rows of
    :func:`swarmd.memory.stats.gate_stats` with the learned thresholds, else
    the config's (``quality``) for actions it has, and the gates still unverified on this
    deployment (:func:`swarmd.memory.verification.unverified_gates`).  What ``memory stats``
    and ``GET /api/v1/memory`` show."""
    memory = Memory(db)
    try:
        learned = {k: v[1] for k, v in GateBook(memory).active().items()}
        rows = gate_stats(memory, learned)
        for row in rows:
            if row.threshold is None and row.action in config.actions:
                row.threshold = config.quality.threshold_for(row.action)
        return memory.count(), rows, unverified_gates(memory, config.memory.min_verified)
    finally:
        memory.close()


def trace_summaries(store: TraceStore, rows) -> list[dict]:
    """Summaries of ``rows`` (:meth:`TraceStore.rows`); an unusable row has ``unusable`` (the error's first line)."""
    listed = []
    for row in rows:
        try:
            listed.append(store.load(row).summary())
        except TraceError as exc:
            listed.append({"id": row["id"], "version": row["version"], "goal": row["goal"],
                           "confidence": row["confidence"], "runs": row["runs"], "successes": row["successes"],
                           "failures": row["failures"], "saved_usd": row["saved_usd"], "active": bool(row["active"]),
                           "disabled": bool(row["disabled"]), "unusable": str(exc).splitlines()[0]})
    return listed


def trace_list(store: TraceStore, all_versions: bool = False) -> list[dict]:
    """Trace summaries, newest first (``traces list --json`` lines, ``GET /api/v1/traces``);
    the active version of each unless ``all_versions``."""
    return trace_summaries(store, store.rows(all_versions=all_versions))


def trace_detail(store: TraceStore, trace_id: str, version: int | None = None) -> dict | None:
    """One version's summary plus ``trace`` (its steps: ``traces show --json``,
    ``GET /api/v1/traces/{id}``), or ``None`` when no trace has that id.  Raises
    :class:`~swarmd.agent.traces.TraceError` for an unusable one or an unknown version."""
    if not any(row["id"] == trace_id for row in store.rows(all_versions=True)):
        return None
    return trace_document(store.get(trace_id, version))


def trace_document(stored) -> dict:
    """One stored trace version (:meth:`TraceStore.get`) as ``traces show --json`` prints it:
    its summary plus ``trace``, the body (steps, validations)."""
    return {**stored.summary(), "trace": stored.trace.model_dump(mode="json", by_alias=True)}
