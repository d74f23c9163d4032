"""Routing strategies (cascade, local_only, api_only, local_fallback) end to
end: the API tier is the Anthropic loopback fake through the official client,
the local tiers the echo provider (a sure first label at once); a budget is
the real Redis-backed one."""

from __future__ import annotations

import pytest
import yaml

from swarmd.config import ConfigError, parse_config
from swarmd.costs import Budget, Ledger
from swarmd.objectives import ObjectiveError, validate
from swarmd.router import BUDGET, RequestError, Router
from tests.fakes import Answer, Error, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import ROOT

LABELS = ("feat", "fix", "docs")        # echo answers the first one, "feat", with probability 1
REFUSED = "I cannot do that"            # echo repeats it: a refusal, confidence 0


def config_text(api_url: str, strategy: str | None = None, api: bool = True, budgets: dict | None = None,
                **sections) -> str:
    """The shipped config with both local tiers on the echo provider and the
    API tier on ``api_url`` ($3 / $15 per MTok); ``strategy``: the classify
    and summarize actions' default; ``api=False``: no API model at all;
    ``sections``: top-level keys replaced."""
    data = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())
    common = {"context_window": 8192, "timeout_s": 2, "max_output_tokens": 64}
    data["tiers"] = {
        "LOCAL_FAST": [{"provider": "echo", "model": "echo-fast", "price_per_mtok_in": 0, "price_per_mtok_out": 0,
                        **common}],
        "LOCAL_QUALITY": [{"provider": "echo", "model": "echo-quality", "price_per_mtok_in": 0,
                           "price_per_mtok_out": 0, **common}],
        "API_FALLBACK": [{"provider": "anthropic", "model": "claude-sonnet-5-5", "base_url": api_url,
                          "price_per_mtok_in": 3.0, "price_per_mtok_out": 15.0, "prior_confidence": 0.9, **common}],
    }
    if not api:
        data["tiers"]["API_FALLBACK"] = [{**data["tiers"]["LOCAL_QUALITY"][0], "model": "echo-last"}]
    if strategy:
        for action in ("classify", "summarize"):
            data["actions"][action]["strategy"] = strategy
    data["budgets"] = budgets or {"daily_usd": None, "monthly_usd": None}
    data.update(sections)
    return yaml.safe_dump(data, sort_keys=False)


def make(api_url: str, **kw):
    return parse_config(config_text(api_url, **kw), "test.yaml", env={"ANTHROPIC_API_KEY": "sk-ant-test-key"})


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger.db")


def tiers_called(ledger) -> list[tuple[str, str]]:
    return [(r["tier"], r["outcome"]) for r in ledger.rows()]


def test_cascade_answers_at_the_first_local_tier(ledger):
    with FakeAnthropic(["fix"]) as api:
        result = Router(make(api.url), ledger).route("classify", "add a flag", LABELS)
    assert (result.status, result.tier, result.answer) == ("accepted", "LOCAL_FAST", "feat")
    assert api.model_requests() == [] and tiers_called(ledger) == [("LOCAL_FAST", "accepted")]


def test_api_only_skips_the_local_tiers(ledger):
    with FakeAnthropic([Answer("fix", tokens_in=100, tokens_out=1)]) as api:
        result = Router(make(api.url), ledger).route("classify", "add a flag", LABELS, strategy="api_only")
    assert (result.status, result.tier, result.answer, result.escalations) == ("accepted", "API_FALLBACK", "fix", 0)
    assert len(api.model_requests()) == 1 and tiers_called(ledger) == [("API_FALLBACK", "accepted")]
    assert result.cost_usd == pytest.approx((100 * 3.0 + 1 * 15.0) / 1e6)


def test_api_only_with_the_api_down_is_unresolved_without_a_local_call(ledger):
    result = Router(make(closed_port_url()), ledger).route("classify", "add a flag", LABELS, strategy="api_only")
    assert (result.status, result.answer, result.reason) == ("unresolved", None, "every tier unavailable")
    assert any(s.startswith("API_FALLBACK/anthropic/claude-sonnet-5-5#0: ") for s in result.skipped)
    assert ledger.rows() == []


def test_local_only_never_calls_the_api_even_when_no_local_tier_passes(ledger):
    with FakeAnthropic(["a summary"]) as api:
        result = Router(make(api.url), ledger).route("summarize", REFUSED, strategy="local_only")
    assert result.status == "unresolved" and result.tier == "LOCAL_QUALITY"   # summarize starts there
    assert api.model_requests() == []
    assert tiers_called(ledger) == [("LOCAL_QUALITY", "rejected")]


def test_local_only_as_the_action_default_comes_from_the_config(ledger):
    with FakeAnthropic(["a summary"]) as api:
        router = Router(make(api.url, strategy="local_only"), ledger)
        assert router.route("summarize", REFUSED).status == "unresolved"
        assert api.model_requests() == []
        escalated = router.route("summarize", REFUSED, strategy="cascade")       # the objective's choice wins
    assert (escalated.status, escalated.tier) == ("accepted", "API_FALLBACK")
    assert len(api.model_requests()) == 1


def test_local_fallback_asks_the_api_first(ledger):
    with FakeAnthropic(["fix"]) as api:
        result = Router(make(api.url), ledger).route("classify", "add a flag", LABELS, strategy="local_fallback")
    assert (result.status, result.tier, result.answer) == ("accepted", "API_FALLBACK", "fix")
    assert tiers_called(ledger) == [("API_FALLBACK", "accepted")]


def test_local_fallback_answers_locally_when_the_api_is_unreachable(ledger):
    result = Router(make(closed_port_url()), ledger).route("classify", "add a flag", LABELS,
                                                            strategy="local_fallback")
    assert (result.status, result.tier, result.answer, result.escalations) == ("accepted", "LOCAL_FAST", "feat", 0)
    assert any(s.startswith("API_FALLBACK/") for s in result.skipped)
    assert tiers_called(ledger) == [("LOCAL_FAST", "accepted")]


def test_local_fallback_answers_locally_when_the_api_is_overloaded(ledger):
    with FakeAnthropic([Error(529, "Overloaded")] * 3) as api:
        result = Router(make(api.url), ledger).route("classify", "add a flag", LABELS, strategy="local_fallback")
    assert (result.status, result.tier, result.answer) == ("accepted", "LOCAL_FAST", "feat")
    assert len(api.model_requests()) >= 1


def test_local_fallback_answers_locally_when_a_budget_refuses_the_api(ledger, redis_conn):
    with FakeAnthropic(["fix"]) as api:
        config = make(api.url, budgets={"daily_usd": 0.0, "monthly_usd": 10.0})
        router = Router(config, ledger, budget=Budget(redis_conn, config))
        result = router.route("classify", "add a flag", LABELS, objective_id="o1", strategy="local_fallback")
    assert api.model_requests() == []
    assert (result.status, result.tier, result.answer) == ("accepted", "LOCAL_FAST", "feat")
    assert any("API_FALLBACK" in s and "budget: daily cap" in s for s in result.skipped)


def test_local_fallback_objective_cap_refusal_also_falls_back(ledger):
    with FakeAnthropic(["fix"]) as api:
        result = Router(make(api.url), ledger).route("classify", "add a flag", LABELS, max_cost_usd=0.0,
                                                     strategy="local_fallback")
    assert api.model_requests() == [] and (result.status, result.tier) == ("accepted", "LOCAL_FAST")


def test_local_fallback_keeps_a_low_confidence_api_answer_without_local_calls(ledger):
    with FakeAnthropic(["banana"]) as api:           # not a label: confidence 0
        result = Router(make(api.url), ledger).route("classify", "add a flag", LABELS, strategy="local_fallback")
    assert (result.status, result.tier) == ("unresolved", "API_FALLBACK")
    assert result.reason != BUDGET and tiers_called(ledger) == [("API_FALLBACK", "rejected")]


def test_a_strategy_the_chain_cannot_serve_is_a_request_error(ledger):
    router = Router(make("http://127.0.0.1:9", api=False), ledger)
    for strategy in ("api_only", "local_fallback"):
        with pytest.raises(RequestError, match=rf"strategy '{strategy}' for action 'classify': expected .*no API model"):
            router.route("classify", "x", LABELS, strategy=strategy)
    with pytest.raises(RequestError, match="strategy 'sideways'.*one of cascade, local_only"):
        router.route("classify", "x", LABELS, strategy="sideways")
    assert ledger.rows() == []


def test_config_rejects_an_unknown_or_unservable_action_strategy():
    with pytest.raises(ConfigError) as bad:
        parse_config(config_text("http://127.0.0.1:9", strategy="sideways"), "test.yaml")
    assert "actions.classify.strategy" in str(bad.value) and "'sideways'" in str(bad.value)
    with pytest.raises(ConfigError) as unservable:
        parse_config(config_text("http://127.0.0.1:9", strategy="api_only", api=False), "test.yaml")
    text = str(unservable.value)
    assert "actions.classify.strategy" in text and "actions.summarize.strategy" in text and "no API model" in text


def test_an_agent_objective_strategy_is_checked_against_every_action_it_routes_with():
    data = yaml.safe_load(config_text("http://127.0.0.1:9"))
    data["actions"]["verify_trace"]["tier"] = "API_FALLBACK"      # its chain: the API model only
    config = parse_config(yaml.safe_dump(data), "test.yaml")
    assert validate({"input": "tidy the repo", "strategy": "api_only"}, config).strategy == "api_only"
    with pytest.raises(ObjectiveError) as bad:                   # as `swarmctl submit` and the daemon's admission
        validate({"input": "tidy the repo", "strategy": "local_only"}, config, file="b.jsonl", line=7)
    assert str(bad.value).startswith("b.jsonl:7: strategy: expected a strategy with a model to call: no local model "
                                     "in the chain from API_FALLBACK (actions.verify_trace: an agent objective")
    assert validate({"action": "classify", "input": "x", "labels": "a,b", "strategy": "local_only"}, config)
    del data["actions"]["verify_trace"]                          # not configured: never called, not checked
    config = parse_config(yaml.safe_dump(data), "test.yaml")
    assert validate({"input": "tidy the repo", "strategy": "local_only"}, config).strategy == "local_only"


def test_objective_strategy_is_validated_and_defaults_to_the_action():
    config = make("http://127.0.0.1:9", strategy="local_only")
    assert validate({"action": "classify", "input": "x", "labels": "a,b"}, config).strategy == "local_only"
    assert validate({"action": "reason", "input": "x"}, config).strategy == "cascade"
    assert validate({"action": "classify", "input": "x", "labels": "a,b", "strategy": "api_only"},
                    config).strategy == "api_only"
    with pytest.raises(ObjectiveError, match="strategy: expected one of 'cascade', 'local_only', 'api_only' or "
                                             "'local_fallback', found 'fast'"):
        validate({"action": "classify", "input": "x", "labels": "a,b", "strategy": "fast"}, config)
    no_api = make("http://127.0.0.1:9", api=False)
    with pytest.raises(ObjectiveError, match="strategy: expected .*no API model.*found 'api_only'"):
        validate({"action": "classify", "input": "x", "labels": "a,b", "strategy": "api_only"}, no_api)
