"""The router with a budget, end to end through the official clients against
the loopback Ollama/Anthropic fakes and the real Redis fixture."""

from __future__ import annotations

import math
import time

import pytest

from swarmd import constants as K
from swarmd.costs import Budget, Ledger
from swarmd.costs.budgets import NANO_PER_USD, Denial
from swarmd.router import BUDGET, Router
from tests.fakes.config import API_PRICES, make_config
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.ollama_server import FakeOllama

LABELS = ("feat", "fix", "docs")
SURE, UNSURE, MIDDLING = math.log(0.95), math.log(0.3), math.log(0.5)
DAY0 = (time.time() // 86400) * 86400          # today 00:00 UTC


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger.db")


def test_exhausted_budget_keeps_local_answer_and_marks_unresolved_budget(redis_conn, ledger):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[MIDDLING])]) as quality, FakeAnthropic(["feat"]) as api:
        config = make_config(fast.url, quality.url, api.url, budgets={"daily_usd": 0.0, "monthly_usd": 10.0})
        router = Router(config, ledger, budget=Budget(redis_conn, config))
        result = router.route("classify", "add a --dry-run flag", LABELS, objective_id="o1", request_id="o1")
    assert api.model_requests() == []                           # the paid tier was never called
    assert (result.status, result.reason, result.answer, result.tier) == ("unresolved", BUDGET, "docs", "LOCAL_QUALITY")
    assert result.to_json()["reason"] == "budget" and result.cost_usd == 0.0
    assert any("API_FALLBACK" in s and "budget: daily cap" in s for s in result.skipped)
    assert [r["outcome"] for r in ledger.rows()] == ["escalated", "rejected"]


def test_free_models_are_never_blocked_by_an_exhausted_budget(redis_conn, ledger):
    config = None
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("feat", logprobs=[SURE])]) as quality, FakeAnthropic(["feat"]) as api:
        config = make_config(fast.url, quality.url, api.url, budgets={"daily_usd": 0.001, "monthly_usd": 0.001})
        budget = Budget(redis_conn, config)
        spend = budget.try_reserve(0.001)
        budget.settle(spend, 0.001)                              # the whole cap is spent
        assert isinstance(budget.try_reserve(1e-9), Denial)
        result = Router(config, ledger, budget=budget).route("classify", "x", LABELS)
    assert result.status == "accepted" and result.tier == "LOCAL_QUALITY" and result.answer == "feat"
    assert len(fast.model_requests()) == 1 and len(quality.model_requests()) == 1 and api.model_requests() == []


def test_paid_call_reserves_then_settles_to_the_actual_cost(redis_conn, ledger):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("fix", logprobs=[UNSURE])]) as quality, \
         FakeAnthropic([Answer("feat", tokens_in=412, tokens_out=3)]) as api:
        config = make_config(fast.url, quality.url, api.url, budgets={"daily_usd": 5.0, "monthly_usd": 100.0})
        budget = Budget(redis_conn, config)
        result = Router(config, ledger, budget=budget).route("classify", "x", LABELS, objective_id="o2",
                                                             max_cost_usd=1.0)
    assert result.status == "accepted" and result.tier == "API_FALLBACK"
    expected = (412 * API_PRICES[0] + 3 * API_PRICES[1]) / 1e6
    day, month = budget.status(fresh=True)
    assert day.spent_usd == pytest.approx(expected, abs=1e-9) and day.reserved_usd == 0.0
    assert month.spent_usd == pytest.approx(expected, abs=1e-9)
    assert int(redis_conn.hget(K.budget_objective_key("o2"), "spent")) / NANO_PER_USD == pytest.approx(expected, abs=1e-9)
    assert ledger.rows()[-1]["cost_usd"] == pytest.approx(expected)
    assert redis_conn.zcard("swarmd:budget:leases") == 0


def test_objective_cap_without_shared_budget_is_checked_within_the_request(ledger):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[UNSURE])]) as quality, FakeAnthropic(["feat"]) as api:
        router = Router(make_config(fast.url, quality.url, api.url), ledger)
        capped = router.route("classify", "x", LABELS, max_cost_usd=0.0001)   # the API worst case is ~$0.004
        assert capped.status == "unresolved" and capped.reason == BUDGET and api.model_requests() == []
        free = router.route("classify", "y", LABELS)                           # no cap, no budget: unlimited
        assert free.tier == "API_FALLBACK" and len(api.model_requests()) == 1


def test_pacing_lowers_the_api_threshold_while_ahead_of_plan(redis_conn, ledger, log_lines):
    now = [DAY0 + 6 * 3600]                                      # 25% of the UTC day gone
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[MIDDLING])]) as quality, FakeAnthropic(["feat"]) as api:
        config = make_config(fast.url, quality.url, api.url, budgets={
            "daily_usd": 1.0, "monthly_usd": None,
            "pacing": {"enabled": True, "tolerance": 0.05, "threshold_factor": 0.5}})
        budget = Budget(redis_conn, config, clock=lambda: now[0], cache_s=0)
        spend = budget.try_reserve(0.5)
        budget.settle(spend, 0.5)                                # 50% spent at 25% of the day: ahead
        router = Router(config, ledger, budget=budget)
        paced = router.route("classify", "x", LABELS)
        # LOCAL_FAST's next tier is free: its 0.3 still escalates at 0.7.  LOCAL_QUALITY's
        # next tier is paid: its 0.5 is accepted at 0.7 x 0.5 = 0.35.
        assert (paced.status, paced.tier, paced.answer) == ("accepted", "LOCAL_QUALITY", "docs")
        assert api.model_requests() == []
        assert any("classify escalation threshold to paid tiers 0.70 -> 0.35" in l and "ahead of plan" in l
                   for l in log_lines)
        now[0] = DAY0 + 18 * 3600                                # 75% of the day gone: back on plan
        on_plan = router.route("classify", "y", LABELS)
        assert on_plan.tier == "API_FALLBACK" and len(api.model_requests()) == 1
        assert any("0.35 -> 0.70 (back on plan)" in l for l in log_lines)


def test_pacing_threshold_rule_and_one_log_line_per_change(redis_conn, log_lines):
    now = [DAY0 + 12 * 3600]                                     # half the day gone
    config = make_config(budgets={"daily_usd": 10.0, "monthly_usd": None,
                                  "pacing": {"enabled": True, "tolerance": 0.1, "threshold_factor": 0.4}})
    budget = Budget(redis_conn, config, clock=lambda: now[0], cache_s=0)
    assert budget.pacing_threshold(0.7, "classify") == 0.7       # nothing spent
    r = budget.try_reserve(5.5)
    budget.settle(r, 5.5)                                        # 55% <= 50% + 10%: on plan
    assert budget.pacing_threshold(0.7, "classify") == 0.7
    r = budget.try_reserve(1.0)
    budget.settle(r, 1.0)                                        # 65% > 60%: ahead
    assert budget.pacing_threshold(0.7, "classify") == pytest.approx(0.28)
    assert budget.pacing_threshold(0.6, "generate_code") == pytest.approx(0.24)
    assert budget.pacing_threshold(0.7, "classify") == pytest.approx(0.28)
    changes = [l for l in log_lines if "budget pacing" in l]
    assert len(changes) == 2 and "daily $6.5000 of $10.00 spent (65%) with 50% of the period elapsed" in changes[0]
    now[0] = DAY0 + 20 * 3600                                    # 83% of the day: back on plan
    assert budget.pacing_threshold(0.7, "classify") == 0.7
    disabled = make_config(budgets={"daily_usd": 10.0, "pacing": {"enabled": False}})
    assert Budget(redis_conn, disabled, clock=lambda: DAY0 + 3600).pacing_threshold(0.7, "x") == 0.7


def test_label_answers_reserve_only_the_tokens_a_label_may_take(ledger):
    from swarmd.router.prompts import build_prompt
    from swarmd.router.providers.base import LABEL_MAX_TOKENS
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[UNSURE])]) as quality, FakeAnthropic(["feat"]) as api:
        config = make_config(fast.url, quality.url, api.url)
        prompt = build_prompt(config.actions["classify"], "x", LABELS)
        # Worst cases by hand: input = prompt bytes + 32 tokens of overhead, output = the
        # label's 8 tokens or the model's max_output_tokens (64 in make_config), at $3/$15 per MTok.
        tokens_in = len(prompt.text.encode()) + 32
        label_case = (tokens_in * API_PRICES[0] + 8 * API_PRICES[1]) / 1e6
        full_case = (tokens_in * API_PRICES[0] + 64 * API_PRICES[1]) / 1e6
        cap = (label_case + full_case) / 2            # fits a label answer, not a 64-token one
        result = Router(config, ledger).route("classify", "x", LABELS, max_cost_usd=cap)
    assert result.tier == "API_FALLBACK" and result.answer == "feat"
    (request,) = api.model_requests()
    assert request.json["max_tokens"] == LABEL_MAX_TOKENS == 8            # the reservation's ceiling is sent
