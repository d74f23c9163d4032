"""An agent objective's routing strategy governs every model call it makes
(plan, agent steps, verification): the Anthropic fake as the API tier and a
fake Ollama as LOCAL_QUALITY, both scripted to answer, and the strategy alone
deciding which one is asked."""

from __future__ import annotations

import pytest

from tests.fakes import Answer
from tests.fakes.ollama_server import FakeOllama
from tests.traces.conftest import Runner
from tests.traces.test_follower import GOAL, learner

GOAL2 = "Set the version in RELEASE.txt to 4.0.2 and verify it"


def confident(text: str) -> Answer:
    """A local reply with high token probabilities (the gate accepts it)."""
    return Answer(text, logprobs=(-0.01,) * max(1, len(text.split())))


@pytest.fixture
def local():
    with FakeOllama() as srv:
        yield srv


def run_learner(runner: Runner, local: FakeOllama, oid: str, **fields):
    """Script the learner's replies on both tiers, run GOAL in a fresh workspace;
    returns the outcome and the calls each tier got."""
    runner.api.push(*learner())
    local.push(*[confident(r) for r in learner()])
    api_before, local_before = len(runner.api.model_requests()), len(local.model_requests("/api/generate"))
    runner.workspace(oid, {"VERSION.txt": "0.9.0\n"})
    out = runner.run(oid, GOAL, **fields)
    return out, len(runner.api.model_requests()) - api_before, len(local.model_requests("/api/generate")) - local_before


@pytest.mark.parametrize("strategy, tier, api_calls, local_calls", [
    (None, "LOCAL_QUALITY", 0, 4),               # cascade: the local tier answers first
    ("local_only", "LOCAL_QUALITY", 0, 4),
    ("api_only", "API_FALLBACK", 4, 0),
    ("local_fallback", "API_FALLBACK", 4, 0),    # the API first; it answered, so no local call
])
def test_the_planner_and_the_agent_loop_follow_the_objectives_strategy(tmp_path, api, local, strategy, tier,
                                                                       api_calls, local_calls):
    runner = Runner(tmp_path, api, quality_url=local.url, enabled=False)
    out, to_api, to_local = run_learner(runner, local, "o1", strategy=strategy)
    assert (out.state, out.result["answer"], out.result["tier"]) == ("done", "VERSION.txt holds 2.3.1 (1 line)", tier)
    assert (to_api, to_local) == (api_calls, local_calls)
    assert {a["tier"] for a in out.attempts} == {tier}
    runner.store.close()


def test_local_fallback_runs_on_the_local_tier_when_a_budget_refuses_the_api(tmp_path, api, local):
    runner = Runner(tmp_path, api, quality_url=local.url, enabled=False)
    # the objective's cap is below one API call's worst case: every API call is refused, none made
    out, to_api, to_local = run_learner(runner, local, "o1", strategy="local_fallback", max_cost_usd=1e-9)
    assert (out.state, out.result["tier"], to_api, to_local) == ("done", "LOCAL_QUALITY", 0, 4)
    out, to_api, to_local = run_learner(runner, local, "o2", strategy="api_only", max_cost_usd=1e-9)
    assert (out.state, to_api, to_local) == ("unresolved", 0, 0)
    assert out.result["reason"].startswith("no tier able to plan (tried API_FALLBACK under strategy api_only): budget")
    runner.store.close()


def test_local_only_never_reaches_the_api_even_when_no_local_tier_answers(tmp_path, api):
    runner = Runner(tmp_path, api, enabled=False)                   # LOCAL_QUALITY on a closed port
    runner.api.push(*learner())
    runner.workspace("o1", {"VERSION.txt": "0.9.0\n"})
    out = runner.run("o1", GOAL, strategy="local_only")
    assert out.state == "unresolved" and out.result["reason"].startswith(
        "no tier able to plan (tried LOCAL_QUALITY under strategy local_only): every tier unavailable")
    assert api.model_requests() == []
    runner.store.close()


def test_a_supervised_replay_of_a_local_only_objective_is_verified_by_a_local_tier(tmp_path, api, local):
    runner = Runner(tmp_path, api, quality_url=local.url)           # shipped thresholds: supervised from 0.75
    out, to_api, _ = run_learner(runner, local, "o1", strategy="local_only")
    assert (out.result["mode"], to_api) == ("learner", 0)
    [row] = runner.store.rows()                                     # a local planner's run is learned too
    local.push(confident("yes"))
    runner.api.push("no")                                           # would reject, but must not be asked
    runner.workspace("o2", {"RELEASE.txt": "1.0.0\n"})
    out = runner.run("o2", GOAL2, strategy="local_only")
    assert (out.state, out.result["mode"], out.result["answer"]) == (
        "done", "supervised", "RELEASE.txt holds 4.0.2 (1 line)")
    assert api.model_requests() == []
    assert local.model_requests("/api/generate")[-1].json["prompt"].endswith("\nVerified:")
    assert [(a["tier"], a.get("action")) for a in out.attempts] == [("TRACE", None), ("LOCAL_QUALITY", "verify_trace")]
    assert runner.store.get(row["id"]).confidence == pytest.approx(0.775)
    runner.store.close()
