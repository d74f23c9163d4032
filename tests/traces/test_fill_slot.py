"""Free text written without quotes: the small model (a fake Ollama as
LOCAL_FAST) copies the slot value from the goal; the copy must be in the goal."""

from __future__ import annotations

import json

import pytest

from tests.fakes import Answer
from tests.fakes.ollama_server import FakeOllama
from tests.traces.conftest import Runner, done, step

GOAL = "Add the entry 'Fix login crash' to NOTES.md"
LEARNER = [json.dumps(["append the entry", "count it"]),
           step("shell", command="printf '%s\\n' '- Fix login crash' >> NOTES.md"),
           step("shell", command="grep -c -- '- Fix login crash' NOTES.md"),
           done("Added 'Fix login crash' to NOTES.md (1 entry)")]


@pytest.fixture
def small():
    with FakeOllama() as srv:
        yield srv


def learned(tmp_path, api, small) -> Runner:
    runner = Runner(tmp_path, api, fast_url=small.url, follow_threshold=0.75)
    runner.api.push(*LEARNER)
    runner.workspace("o1", {"NOTES.md": "# Notes\n"})
    assert runner.run("o1", GOAL).result["mode"] == "learner"
    return runner


def test_small_model_copies_the_unquoted_value_and_the_trace_is_followed(tmp_path, api, small):
    runner = learned(tmp_path, api, small)
    small.push(Answer("Speed up search", logprobs=(-0.01, -0.02, -0.01)))
    ws = runner.workspace("o2", {"NOTES.md": "# Notes\n"})
    calls = len(api.model_requests())
    out = runner.run("o2", "Add the entry Speed up search to NOTES.md")
    assert (out.state, out.result["mode"], out.result["answer"]) == (
        "done", "follower", "Added 'Speed up search' to NOTES.md (1 entry)")
    assert (ws / "NOTES.md").read_text() == "# Notes\n- Speed up search\n"
    assert len(api.model_requests()) == calls                      # the strong model was not asked
    [asked] = small.model_requests("/api/generate")
    assert asked.json["prompt"].endswith(
        "Example goal: Add the entry 'Fix login crash' to NOTES.md Example value: Fix login crash "
        "Goal: Add the entry Speed up search to NOTES.md\nValue:")
    assert [(a["action"], a["mode"]) for a in out.attempts[:1]] == [("fill_slot", "follower")]
    runner.store.close()


def test_a_copy_that_is_not_in_the_goal_runs_the_learner_without_penalty(tmp_path, api, small):
    runner = learned(tmp_path, api, small)
    small.push(Answer("Speed up searching", logprobs=(-0.01, -0.02, -0.01)))
    runner.api.push(json.dumps(["append"]), done("learner added it"))
    runner.workspace("o3", {"NOTES.md": "# Notes\n"})
    out = runner.run("o3", "Add the entry Speed up search to NOTES.md")
    assert (out.result["mode"], out.result["answer"]) == ("learner", "learner added it")
    [row] = runner.store.rows()
    assert (row["runs"], row["confidence"]) == (0, 0.75)
    runner.store.close()


@pytest.mark.slow
def test_the_embedded_model_copies_free_text_from_a_goal(tmp_path, api):
    """The shipped fill_slot prompt on the real Gemma 3 270M (LOCAL_FAST as shipped)."""
    import yaml

    from swarmd.config import parse_config
    from swarmd.agent.traces import quote_span
    from swarmd.router import Router
    from tests.traces.conftest import REPO

    data = yaml.safe_load((REPO / "src" / "swarmd" / "llm_config.yaml").read_text())
    data["tiers"] = {k: v for k, v in data["tiers"].items() if k == "LOCAL_FAST"}
    data["escalation"]["chain"] = ["LOCAL_FAST"]
    for action in data["actions"].values():
        action["tier"] = "LOCAL_FAST"
    router = Router(parse_config(yaml.safe_dump(data), "test", env={}))
    try:
        goal = "Add the entry Speed up search to NOTES.md"
        res = router.route("fill_slot", f"Example goal: {GOAL} Example value: Fix login crash Goal: {goal}")
    finally:
        router.close()
    assert res.status == "accepted" and res.tier == "LOCAL_FAST"
    assert quote_span(goal, res.answer) == "Add the entry 'Speed up search' to NOTES.md"
