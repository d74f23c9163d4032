"""Objective validation: every problem of an objective is reported at once,
each naming the field (and the JSONL file and line when given); good ones
are normalised."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmd.config import load_config
from swarmd.errors import BadInput
from swarmd.objectives import Objective, ObjectiveError, validate

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={})


def problems(raw, **where) -> list[tuple]:
    with pytest.raises(ObjectiveError) as info:
        validate(raw, CONFIG, **where)
    return [(p.file, p.line, p.key, p.found) for p in info.value.problems]


def test_three_mistakes_give_three_problems_naming_the_jsonl_line():
    raw = {"action": "classify", "input": "fix the crash", "labels": ["feat", "feat"], "priority": "urgent",
           "max_cost_usd": -0.5}
    assert problems(raw, file="batch.jsonl", line=7) == [
        ("batch.jsonl", 7, "labels[1]", "'feat' again"),
        ("batch.jsonl", 7, "priority", "'urgent'"),
        ("batch.jsonl", 7, "max_cost_usd", "-0.5"),
    ]


def test_message_has_one_line_per_problem():
    with pytest.raises(ObjectiveError) as info:
        validate({"action": "summarize", "input": " ", "tag": ["x"]}, CONFIG, file="b.jsonl", line=2)
    assert str(info.value).splitlines() == [
        "b.jsonl:2: input: expected non-empty text, found ' ' (input is empty)",
        "b.jsonl:2: tag: expected a known key (id, action, input, labels, priority, max_cost_usd, strategy, tags, "
        "submitted_at, retry_of, traceparent), found unknown key 'tag' (did you mean 'tags'?)",
    ]
    assert isinstance(info.value, BadInput) and isinstance(info.value, ValueError)


def test_config_checks_name_the_config_key():
    assert problems({"action": "summarize", "input": "x" * 32769}) == [
        ("objective", None, "input", "32769 characters")]
    assert problems({"action": "translate", "input": "hi", "labels": "a"}) == [
        ("objective", None, "action", "unknown action 'translate'")]
    no_agent = CONFIG.model_copy(update={"actions": {k: v for k, v in CONFIG.actions.items() if k != "agent"}})
    with pytest.raises(ObjectiveError, match="free text needs the 'agent' action, which this config lacks"):
        validate({"text": "tidy up"}, no_agent)


def test_free_text_is_an_agent_objective():
    assert validate({"text": "tidy up"}, CONFIG).action == "agent"


def test_label_actions_need_two_distinct_labels_without_commas():
    assert problems({"action": "classify", "input": "x"}) == [("objective", None, "labels", "null")]
    assert problems({"action": "classify", "input": "x", "labels": ["a", "b,c", ""]}) == [
        ("objective", None, "labels[1]", "'b,c'"), ("objective", None, "labels[2]", "''")]


def test_good_objective_is_normalised():
    obj = validate({"action": "classify", "text": "fix crash", "labels": "feat, fix", "max_cost_usd": 1}, CONFIG)
    assert (obj.input, obj.labels, obj.priority, obj.max_cost_usd) == ("fix crash", ["feat", "fix"], "normal", 1.0)
    assert obj.id.startswith("obj-") and obj.submitted_at > 1.7e9
    assert validate({"id": "a-1", "action": "summarize", "input": "x", "text": "y"}, CONFIG).input == "x"


def test_cost_cap_must_be_a_number_not_a_flag():
    assert problems({"action": "summarize", "input": "x", "max_cost_usd": True}) == [
        ("objective", None, "max_cost_usd", "True (bool)")]


def test_objective_round_trips_through_its_dict():
    obj = Objective(id="o1", action="classify", input="x", labels=["a", "b"], submitted_at=1.0, strategy="cascade")
    assert obj.to_dict() == {"id": "o1", "action": "classify", "input": "x", "labels": ["a", "b"],
                             "priority": "normal", "max_cost_usd": None, "strategy": "cascade", "tags": [],
                             "submitted_at": 1.0}
    assert validate(obj.to_dict(), CONFIG) == obj
    # without a strategy, validation gives it the action's (cascade in the shipped config)
    assert validate({**obj.to_dict(), "strategy": None}, CONFIG) == obj
