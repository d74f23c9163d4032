"""An objective's routing strategy through the worker job (real Redis, real
RQ worker in this process with swarmd's context, echo local tiers, the
Anthropic loopback fake as the API tier) and into the daemon's store."""

from __future__ import annotations

import json

import pytest

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.objectives import validate
from swarmd.daemon.store import Store
from swarmd.workers.context import ContextWorker, build_context
from swarmd.queue import JOB_FUNC
from tests.fakes.anthropic_server import FakeAnthropic
from tests.router.test_strategies import make


def run_jobs(config, redis_conn, tmp_path, objectives: list[dict]) -> list[dict]:
    """Enqueue ``objectives`` and run them with one burst worker; returns the ``finished`` payloads."""
    ctx = build_context(config, redis_conn, tmp_path / "data", "w-strategy")
    queue = Q.queue("default", redis_conn)
    for obj in objectives:
        queue.enqueue(JOB_FUNC, obj)
    ContextWorker([queue], ctx, connection=redis_conn).work(burst=True)
    ctx.close()
    return [json.loads(f[b"payload"]) for _i, f in redis_conn.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]


@pytest.mark.parametrize("strategy, tier, api_calls", [("api_only", "API_FALLBACK", 1), ("local_only", "LOCAL_FAST", 0),
                                                       ("local_fallback", "API_FALLBACK", 1)])
def test_the_job_routes_with_the_objectives_strategy_and_the_store_keeps_it(tmp_path, redis_conn, strategy, tier,
                                                                            api_calls):
    with FakeAnthropic(["fix"]) as api:
        config = make(api.url, memory={"audit_rate": 0.0})
        obj = validate({"id": "s1", "action": "classify", "input": "add a flag", "labels": "feat,fix",
                        "strategy": strategy}, config)
        [payload] = run_jobs(config, redis_conn, tmp_path, [obj.to_dict()])
    assert (payload["state"], payload["result"]["tier"]) == ("done", tier)
    assert len(api.model_requests()) == api_calls
    store = Store(tmp_path / "store.db")
    store.add_queued(obj)
    store.apply_event("1-0", "finished", "s1", payload)
    assert (store.get("s1")["strategy"], store.get("s1")["tier"]) == (strategy, tier)


def test_local_only_objectives_are_never_audited_by_the_api(tmp_path, redis_conn):
    with FakeAnthropic(["fix"] * 4) as api:
        config = make(api.url, memory={"audit_rate": 1.0})        # audit every free-tier answer
        objectives = [validate({"id": f"a{i}", "action": "classify", "input": f"add flag {i}", "labels": "feat,fix",
                                "strategy": strategy}, config).to_dict()
                      for i, strategy in enumerate(("local_only", "cascade"))]
        payloads = run_jobs(config, redis_conn, tmp_path, objectives)
        audited = [json.loads(x)["record"]["objective_id"] for x in redis_conn.lrange(K.MEMORY_AUDITS, 0, -1)]
    assert [p["result"]["tier"] for p in payloads] == ["LOCAL_FAST", "LOCAL_FAST"]
    assert audited == ["a1"] and len(api.model_requests()) == 1       # the cascade one only
