"""The cascade end to end through the official ollama/anthropic clients
against loopback fakes of both services: escalation while confidence is low,
unavailable tiers skipped and cooled down, malformed replies escalated, a
defined `unresolved` result when nothing passes, and one ledger row per call."""

from __future__ import annotations

import math

import pytest

from swarmd.costs import Ledger
from swarmd.router import Router
from tests.fakes import Answer, Error, Malformed, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import make_config
from tests.fakes.ollama_server import FakeOllama

SURE, UNSURE = math.log(0.95), math.log(0.3)


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger.db")


LABELS = ("feat", "fix", "docs")


def test_low_confidence_escalates_until_accepted(ledger):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("feat", logprobs=[SURE])]) as quality, FakeAnthropic() as api:
        router = Router(make_config(fast.url, quality.url, api.url), ledger)
        result = router.route("classify", "add a --dry-run flag", LABELS, objective_id="o1")
    assert (result.status, result.answer, result.tier, result.escalations) == ("accepted", "feat", "LOCAL_QUALITY", 1)
    assert result.confidence == pytest.approx(0.95)
    assert api.requests == []                              # never reached the paid tier
    assert [r["outcome"] for r in ledger.rows()] == ["escalated", "accepted"]
    assert {r["objective_id"] for r in ledger.rows()} == {"o1"}


def test_nothing_passes_gives_unresolved_with_best_answer(ledger):
    with FakeOllama([Answer("fix", logprobs=[math.log(0.4)])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[math.log(0.6)])]) as quality, \
         FakeAnthropic([Answer("banana", tokens_in=100, tokens_out=2)]) as api:
        result = Router(make_config(fast.url, quality.url, api.url), ledger).route("classify", "x", LABELS)
    assert result.status == "unresolved" and result.answer == "docs" and result.tier == "LOCAL_QUALITY"
    assert result.escalations == 2 and "0.70" in result.reason
    rows = ledger.rows()
    assert [r["outcome"] for r in rows] == ["escalated", "escalated", "rejected"]
    assert rows[2]["cost_usd"] == pytest.approx((100 * 3.0 + 2 * 15.0) / 1e6)   # per-million prices
    assert result.cost_usd == pytest.approx(rows[2]["cost_usd"])


def test_unreachable_tier_is_skipped_and_cooled_down(ledger):
    now = [1000.0]
    dead = closed_port_url()
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, FakeAnthropic(["feat"]) as api:
        config = make_config(fast.url, dead, api.url)
        config = config.model_copy(update={"escalation": config.escalation.model_copy(update={"cooldown_s": 30})})
        router = Router(config, ledger, clock=lambda: now[0])
        first = router.route("classify", "x", LABELS)
        assert first.status == "accepted" and first.tier == "API_FALLBACK" and first.answer == "feat"
        assert first.escalations == 1            # one further call; the skipped tier is not one
        assert any("LOCAL_QUALITY" in s for s in first.skipped)
        second = router.route("classify", "y", LABELS)
        assert any("LOCAL_QUALITY" in s and "no host answered" in s for s in second.skipped)
        assert len(api.model_requests()) == 2
        now[0] += 31                                  # cool-down over: tried again (and refused again)
        third = router.route("classify", "z", LABELS)
        assert third.status == "accepted"
    assert [r["tier"] for r in ledger.rows()] == ["LOCAL_FAST", "API_FALLBACK"] * 3


@pytest.mark.parametrize("bad", [Malformed(b'{"response": "trunc'), Error(500, "boom")])
def test_malformed_or_failed_reply_escalates(ledger, bad):
    with FakeOllama([bad]) as fast, FakeOllama([Answer("fix", logprobs=[SURE])]) as quality, FakeAnthropic() as api:
        result = Router(make_config(fast.url, quality.url, api.url), ledger).route("classify", "x", LABELS)
    assert result.status == "accepted" and result.tier == "LOCAL_QUALITY" and result.escalations == 1
    assert ledger.rows()[0]["outcome"] == "error" and ledger.rows()[0]["error"]


def test_refusal_and_unparsable_json_escalate(ledger):
    with FakeOllama([Answer("I'm sorry, I can't help with that", logprobs=[SURE] * 8)]) as quality, \
         FakeAnthropic(['{"name": "Ada"}']) as api:
        router = Router(make_config(closed_port_url(), quality.url, api.url), ledger)
        result = router.route("extract", "Ada Lovelace wrote the first program")
        assert result.status == "accepted" and result.tier == "API_FALLBACK" and result.answer == '{"name": "Ada"}'
        assert ledger.rows()[0]["error"] == "refusal"
        quality.push(Answer('{"name": ', logprobs=[SURE] * 3))
        api.push("{}")
        router.availability._down.clear()
        again = router.route("extract", "x")
        assert "JSON does not parse" in ledger.rows()[2]["error"]
        assert again.tier == "API_FALLBACK"


def test_every_tier_unavailable_returns_defined_result(ledger):
    dead = closed_port_url()
    config = make_config(dead, dead, dead)
    result = Router(config, ledger).route("classify", "x", LABELS)
    assert result.status == "unresolved" and result.answer is None and result.reason == "every tier unavailable"
    assert len(result.skipped) == 3 and result.to_json()["status"] == "unresolved"
    assert ledger.rows() == []


def test_unknown_action_is_a_request_error_not_a_model_failure(ledger):
    from swarmd.router import RequestError
    router = Router(make_config(closed_port_url(), closed_port_url(), closed_port_url()), ledger)
    with pytest.raises(RequestError, match="unknown action"):
        router.route("translate", "x")
    with pytest.raises(RequestError, match="two labels"):
        router.route("classify", "x", ("feat",))


def test_no_escalation_counted_when_no_further_tier_answers(ledger):
    dead = closed_port_url()
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast:
        result = Router(make_config(fast.url, dead, dead), ledger).route("classify", "x", LABELS)
    assert result.status == "unresolved" and result.answer == "fix" and result.escalations == 0
    assert [r["outcome"] for r in ledger.rows()] == ["rejected"]


def test_collecting_skips_gathers_every_request_of_an_objective_and_a_stop_keeps_them(ledger):
    """Router.collecting_skips: the skips of each request routed for the objective, in order (other
    objectives' left out); a request stopped before its escalation (should_stop) keeps the skips
    made before the stop; unique_skips folds repeats to one per model and reason."""
    from swarmd.router.router import STOPPED, unique_skips
    dead = closed_port_url()
    with FakeOllama([Answer("fix", logprobs=[UNSURE])] * 3) as fast, FakeAnthropic(["feat", "feat"]) as api:
        router = Router(make_config(fast.url, dead, api.url), ledger)
        with router.collecting_skips("o1") as found:
            first = router.route("classify", "x", LABELS, objective_id="o1")
            router.route("classify", "y", LABELS, objective_id="other")
            stopped = router.route("classify", "z", LABELS, objective_id="o1", should_stop=lambda: True)
        after = router.route("classify", "w", LABELS, objective_id="o1")     # the block has ended
    assert first.status == "accepted" and [s["tier"] for s in first.skips] == ["LOCAL_QUALITY"]
    assert (stopped.reason, [a.tier for a in stopped.attempts]) == (STOPPED, ["LOCAL_FAST"])
    assert [s["reason_kind"] for s in stopped.skips] == ["cooling_down"]     # skipped before the stop: kept
    assert found == first.skips + stopped.skips and after.status == "accepted"
    assert [(s["tier"], s["reason_kind"]) for s in unique_skips(found)] == [("LOCAL_QUALITY", "unreachable"),
                                                                            ("LOCAL_QUALITY", "cooling_down")]
