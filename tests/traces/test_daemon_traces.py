"""Traces through the daemon's path: an in-process daemon and RQ worker on the
real Redis of the session (tests/memory's Swarm), the Anthropic fake as the
strong tier.  The worker learns and follows; the daemon applies the trace
events in its store transaction, marks ledger rows learner/follower, and the
cost report shows the savings per trace."""

from __future__ import annotations

import time

import pytest

from swarmd.costs.report import build_report, render_markdown
from swarmd.agent.traces import TraceStore
from swarmd.store.db import connect
from swarmd.daemon.store import Store
from swarmd.daemon.views import objective_detail
from tests.fakes import Answer, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import API_PRICES, make_config
from tests.memory.conftest import Swarm
from tests.traces.test_follower import GOAL, learner


def learn_then_follow(tmp_path, redis_conn, api: FakeAnthropic, config, *replies) -> list[str]:
    """Through the daemon: t1 learns GOAL (the learner scripted), then t2
    (another file and version) runs with ``replies`` scripted; returns the
    prompts the API got."""
    swarm = Swarm(tmp_path, redis_conn, config)
    try:
        data = tmp_path / "data"
        (data / "workspaces" / "t1").mkdir(parents=True)
        (data / "workspaces" / "t1" / "VERSION.txt").write_text("0.9.0\n")
        api.push(*learner())
        swarm.run({"id": "t1", "text": GOAL})
        (data / "workspaces" / "t2").mkdir(parents=True)
        (data / "workspaces" / "t2" / "NEXT.txt").write_text("1.0.0\n")
        api.push(*replies)
        swarm.run({"id": "t2", "text": "Set the version in NEXT.txt to 3.1.4 and verify it"})
        return [r.json["messages"][0]["content"] for r in api.model_requests()]
    finally:
        swarm.close()


def test_daemon_learns_a_trace_follows_it_and_reports_the_savings(tmp_path, redis_conn):
    since = time.time() - 1
    with FakeAnthropic() as api:
        config = make_config(closed_port_url(), closed_port_url(), api.url, memory={"audit_rate": 0.0},
                             traces={"follow_threshold": 0.75})
        calls = len(learn_then_follow(tmp_path, redis_conn, api, config))
    data = tmp_path / "data"
    assert calls == 4                              # plan + 3 loop steps for t1, nothing for t2
    store = Store(data / "memory.db")
    t1, t2 = store.get("t1"), store.get("t2")
    store.close()
    assert (t1["state"], t1["answer"]) == ("done", "VERSION.txt holds 2.3.1 (1 line)")
    assert (t2["state"], t2["answer"], t2["tier"]) == ("done", "NEXT.txt holds 3.1.4 (1 line)", "TRACE")
    assert (data / "workspaces" / "t2" / "NEXT.txt").read_text() == "3.1.4\n"
    traces = TraceStore(data / "memory.db")
    [row] = traces.rows()
    learned = traces.load(row)
    traces.close()
    assert learned.confidence == pytest.approx(0.775) and learned.successes == 1
    store = Store(data / "memory.db")      # what the API and the one-objective page show as the trace used
    used = {oid: objective_detail(store, redis_conn, oid)["trace_used"] for oid in ("t1", "t2")}
    store.close()
    assert used == {"t1": None, "t2": f"{row['id']}@v1"}
    conn = connect(data / "memory.db", readonly=True)
    ledger = [(r["objective_id"], r["action"], r["tier"], r["mode"]) for r in conn.execute(
        "SELECT * FROM ledger ORDER BY id")]
    conn.close()
    assert ledger == [("t1", "plan", "API_FALLBACK", "learner")] + [("t1", "agent", "API_FALLBACK", "learner")] * 3 \
        + [("t2", "agent", "TRACE", "follower")]
    # the learner's cost by hand: 4 calls, 10 input tokens each, the replies' words as output tokens
    words = sum(len(r.split()) for r in learner())
    cost = (4 * 10 * API_PRICES[0] + words * API_PRICES[1]) / 1e6
    report = build_report(data / "memory.db", config, since)
    assert report["traces"] == [{"trace": f"{row['id']}@v1", "goal": GOAL, "followed": 1, "supervised": 0,
                                 "failed": 0, "learner_cost_usd": pytest.approx(cost), "replay_calls_usd": 0.0,
                                 "saved_usd": pytest.approx(cost)}]
    assert report["by_mode"]["learner"]["calls"] == 4 and report["by_mode"]["follower"]["cost_usd"] == 0.0
    assert "## Savings per execution trace" in render_markdown(report)


def test_daemon_supervised_replay_marks_the_verification_and_nets_it_out_of_the_savings(tmp_path, redis_conn):
    """At the shipped traces.follow_threshold (0.9) a new trace (0.75) is
    replayed supervised: the API verifies it (one call, mode supervised,
    action verify_trace) and the report's saving is the learner's cost less
    that call's."""
    since = time.time() - 1
    with FakeAnthropic() as api:
        config = make_config(closed_port_url(), closed_port_url(), api.url, memory={"audit_rate": 0.0})
        assert (config.traces.follow_threshold, config.traces.supervise_from) == (0.9, 0.75)
        prompts = learn_then_follow(tmp_path, redis_conn, api, config, Answer("yes", tokens_in=40, tokens_out=1))
    data = tmp_path / "data"
    assert len(prompts) == 5 and "Goal: Set the version in NEXT.txt to 3.1.4" in prompts[4]
    store = Store(data / "memory.db")
    t2 = store.get("t2")
    store.close()
    assert (t2["state"], t2["answer"], t2["tier"]) == ("done", "NEXT.txt holds 3.1.4 (1 line)", "TRACE")
    verify_cost = (40 * API_PRICES[0] + 1 * API_PRICES[1]) / 1e6
    assert t2["cost_usd"] == pytest.approx(verify_cost)
    conn = connect(data / "memory.db", readonly=True)
    ledger = [(r["objective_id"], r["action"], r["tier"], r["mode"]) for r in conn.execute(
        "SELECT * FROM ledger ORDER BY id")]
    conn.close()
    assert ledger[4:] == [("t2", "agent", "TRACE", "supervised"), ("t2", "verify_trace", "API_FALLBACK", "supervised")]
    traces = TraceStore(data / "memory.db")
    [row] = traces.rows()
    traces.close()
    assert row["confidence"] == pytest.approx(0.775)
    words = sum(len(r.split()) for r in learner())
    cost = (4 * 10 * API_PRICES[0] + words * API_PRICES[1]) / 1e6
    assert row["saved_usd"] == pytest.approx(cost - verify_cost)
    report = build_report(data / "memory.db", config, since)
    assert report["traces"] == [{"trace": f"{row['id']}@v1", "goal": GOAL, "followed": 0, "supervised": 1,
                                 "failed": 0, "learner_cost_usd": pytest.approx(cost),
                                 "replay_calls_usd": pytest.approx(verify_cost),
                                 "saved_usd": pytest.approx(cost - verify_cost)}]
    assert report["by_mode"]["supervised"]["calls"] == 2
    assert report["by_mode"]["supervised"]["cost_usd"] == pytest.approx(verify_cost)
