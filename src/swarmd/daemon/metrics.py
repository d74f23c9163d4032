"""Prometheus metrics of the daemon (``prometheus-client``) on ``127.0.0.1:<metrics.port>/metrics``.

:meth:`DaemonMetrics.refresh` (every ``metrics.refresh_s`` seconds) counts the ledger rows the
daemon persisted since its last read (from 0 at start), labelled ``tier``, ``model``, ``action``:
``swarmd_llm_calls_total`` (+ ``outcome``), ``swarmd_llm_tokens_total`` (+ ``direction``),
``swarmd_llm_cost_usd_total`` (USD), ``swarmd_llm_escalations_total``,
``swarmd_llm_latency_seconds`` (histogram), and the audit rows as
``swarmd_governor_decisions_total{decision,rule}``.  Read at scrape time:
``swarmd_queue_depth{queue}``, ``swarmd_objectives{state}``, ``swarmd_workers_up``, per budget
period (UTC) ``swarmd_budget_spent_usd``, ``swarmd_budget_reserved_usd``,
``swarmd_budget_cap_usd``; with a config ``swarmd_tier_up{tier,provider,model}`` and
``swarmd_gate_false_accept_upper{action,labels,model,prompt}`` (95% upper bound).
Why counters come from the ledger: docs/design.md.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rq import Worker

from swarmd.daemon.health import tier_health
from swarmd.memory.gate import GateBook
from swarmd.memory.records import Memory
from swarmd.memory.stats import gate_stats
from swarmd.store.db import connect
from swarmd.queue import queue_depths

LABELS = ("tier", "model", "action")
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Gauges(Collector):
    """Scrape-time gauges: queue depths, objectives by state, budget spend."""

    def __init__(self, owner: "DaemonMetrics"):
        self.owner = owner

    def collect(self):
        o = self.owner
        queues = GaugeMetricFamily("swarmd_queue_depth", "RQ jobs waiting per queue", labels=["queue"])
        objectives = GaugeMetricFamily("swarmd_objectives", "objectives by state (store)", labels=["state"])
        spent = GaugeMetricFamily("swarmd_budget_spent_usd", "settled spend this UTC period, USD", labels=["period"])
        reserved = GaugeMetricFamily("swarmd_budget_reserved_usd", "reserved for calls in flight, USD",
                                     labels=["period"])
        cap = GaugeMetricFamily("swarmd_budget_cap_usd", "cap of the UTC period, USD", labels=["period"])
        try:
            if o.redis is not None:
                for name, depth in queue_depths(o.redis).items():
                    queues.add_metric([name], depth)
            if o.store is not None:
                for state, n in o.store.counts().items():
                    objectives.add_metric([state], n)
            if o.budget is not None:
                for p in o.budget.status(fresh=True):
                    spent.add_metric([p.period], p.spent_usd)
                    reserved.add_metric([p.period], p.reserved_usd)
                    if p.cap_usd is not None:
                        cap.add_metric([p.period], p.cap_usd)
        except Exception as exc:
            logger.warning("metrics: reading queues/objectives/budget failed: {}", exc)
        yield from (queues, objectives, spent, reserved, cap)
        yield from self._health()

    def _health(self):
        """``swarmd_workers_up``, ``swarmd_tier_up`` and ``swarmd_gate_false_accept_upper`` (see the module)."""
        o = self.owner
        workers = GaugeMetricFamily("swarmd_workers_up", "RQ workers registered on the daemon's Redis")
        tiers = GaugeMetricFamily("swarmd_tier_up", "1 when the model can be asked now (reachable, key present, "
                                  "not cooling down in any worker), else 0", labels=["tier", "provider", "model"])
        bound = GaugeMetricFamily("swarmd_gate_false_accept_upper", "95% upper bound of the quality gate's "
                                  "false-accept rate on verified answers", labels=["action", "labels", "model", "prompt"])
        try:
            if o.redis is not None:
                names = [w.name for w in Worker.all(connection=o.redis)]
                workers.add_metric([], len(names))
                if o.config is not None:
                    for t in tier_health(o.config, o.redis, names):
                        tiers.add_metric([t["tier"], t["provider"], t["model"]], 1.0 if t["up"] else 0.0)
            if o.config is not None:
                memory = Memory(o.db_path)
                try:
                    learned = {k: v[1] for k, v in GateBook(memory).active().items()}
                    for row in gate_stats(memory, learned):
                        bound.add_metric([row.action, row.labels, row.model, row.prompt], row.false_accept_upper)
                finally:
                    memory.close()
        except Exception as exc:
            logger.warning("metrics: reading workers/tiers/gates failed: {}", exc)
        yield from (workers, tiers, bound)


class DaemonMetrics:
    """The daemon's metrics over its store (``db_path``), Redis and budget.

    ``store``: an object with ``counts() -> {state: n}`` (the daemon's
    :class:`~swarmd.daemon.store.Store`) or ``None``; ``redis``: the daemon's
    client or ``None``; ``budget``: a :class:`~swarmd.costs.budgets.Budget`
    or ``None``; ``from_start``: count ledger rows already present too
    (default: only rows added from now on).  ``registry`` holds everything.
    """

    def __init__(self, db_path: str | Path, redis=None, store=None, budget=None, from_start: bool = False,
                 config=None):
        self.db_path = str(db_path)
        self.redis, self.store, self.budget, self.config = redis, store, budget, config
        self.registry = CollectorRegistry()
        self.calls = Counter("swarmd_llm_calls", "model calls", [*LABELS, "outcome"], registry=self.registry)
        self.tokens = Counter("swarmd_llm_tokens", "tokens", [*LABELS, "direction"], registry=self.registry)
        self.cost = Counter("swarmd_llm_cost_usd", "spend in USD", list(LABELS), registry=self.registry)
        self.escalations = Counter("swarmd_llm_escalations", "calls whose answer was escalated", list(LABELS),
                                   registry=self.registry)
        self.latency = Histogram("swarmd_llm_latency_seconds", "call latency in seconds", list(LABELS),
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.decisions = Counter("swarmd_governor_decisions", "governor decisions (audit log)", ["decision", "rule"],
                                 registry=self.registry)
        self.registry.register(_Gauges(self))
        self._lock = threading.Lock()
        self._last_id = 0 if from_start else self._max_id()
        self._last_audit_id = 0 if from_start else self._max_id("audit_log")
        self.server = None

    def _connect(self) -> sqlite3.Connection:
        return connect(self.db_path, readonly=True)

    def _max_id(self, table: str = "ledger") -> int:
        try:
            conn = self._connect()
            try:
                return int(conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return 0

    def refresh(self) -> int:
        """Count the ledger and audit-log rows added since the last call; returns how many ledger rows."""
        with self._lock:
            conn = self._connect()
            try:
                rows = conn.execute("SELECT * FROM ledger WHERE id > ? ORDER BY id", (self._last_id,)).fetchall()
                audits = conn.execute("SELECT id, decision, rule FROM audit_log WHERE id > ? ORDER BY id",
                                      (self._last_audit_id,)).fetchall()
            finally:
                conn.close()
            for r in audits:
                self.decisions.labels(r["decision"], r["rule"]).inc()
                self._last_audit_id = r["id"]
            for r in rows:
                labels = (r["tier"], r["model"], r["action"])
                self.calls.labels(*labels, r["outcome"]).inc()
                self.tokens.labels(*labels, "in").inc(r["tokens_in"] or 0)
                self.tokens.labels(*labels, "out").inc(r["tokens_out"] or 0)
                self.cost.labels(*labels).inc(r["cost_usd"] or 0.0)
                if r["outcome"] == "escalated":
                    self.escalations.labels(*labels).inc()
                self.latency.labels(*labels).observe((r["latency_ms"] or 0.0) / 1000)
                self._last_id = r["id"]
            return len(rows)

    def serve(self, port: int) -> None:
        """Serve ``/metrics`` on 127.0.0.1:``port`` (a daemon thread)."""
        self.server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        logger.info("metrics on http://127.0.0.1:{}/metrics", port)

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
