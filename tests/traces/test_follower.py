"""Learner and follower runs end to end in-process: the planner and the agent
loop on the Anthropic fake (scripted plans and steps), replays through the
real governor (shipped policy) and real tools, the trace store in SQLite."""

from __future__ import annotations

import json

import pytest

from swarmd.agent.traces import TraceStore
from tests.traces.conftest import PRICES, Runner, done, step

GOAL = "Set the version in VERSION.txt to 2.3.1 and verify it"
PLAN = json.dumps(["write the version", "count the lines holding it"])


def learner(version: str = "2.3.1") -> list[str]:
    """The strong model's replies for GOAL with ``version``: plan, two steps, the answer."""
    return [PLAN, step("shell", command=f"printf '%s\\n' {version} > VERSION.txt"),
            step("shell", command=f"grep -c {version} VERSION.txt"), done(f"VERSION.txt holds {version} (1 line)")]


LEARNER = learner()


def learn_version_trace(runner: Runner) -> str:
    runner.api.push(*LEARNER)
    runner.workspace("o1", {"VERSION.txt": "0.9.0\n"})
    out = runner.run("o1", GOAL, tags=["chore"])
    assert (out.state, out.result["mode"], out.result["tier"]) == ("done", "learner", "API_FALLBACK")
    [row] = runner.store.rows()
    return row["id"]


def test_learner_run_becomes_a_trace_and_a_similar_goal_replays_it_without_a_model(runner):
    tid = learn_version_trace(runner)
    learned = runner.store.get(tid)
    assert [s.args["command"] for s in learned.trace.steps] == [
        "printf '%s\\n' {{version1}} > {{path1}}", "grep -c {{version1}} {{path1}}"]
    assert learned.trace.answer == "{{path1}} holds {{version1}} ({{out1}} line)"
    # the learner's cost: 4 calls of 10 input tokens and the reply's words as output tokens, by hand
    words = sum(len(r.split()) for r in LEARNER)
    assert learned.trace.cost_usd == pytest.approx((4 * 10 * PRICES[0] + words * PRICES[1]) / 1e6)
    assert (learned.confidence, learned.version) == (0.75, 1)

    calls = len(runner.api.model_requests())
    ws = runner.workspace("o2", {"RELEASE.txt": "1.0.0\n"})
    out = runner.run("o2", "Set the version in RELEASE.txt to 4.0.2 and verify it")
    assert len(runner.api.model_requests()) == calls          # no model call at all
    assert (out.state, out.result["mode"], out.result["answer"]) == ("done", "follower", "RELEASE.txt holds 4.0.2 (1 line)")
    assert (ws / "RELEASE.txt").read_text() == "4.0.2\n"
    assert out.attempts == [pytest.approx(out.attempts[0])] and out.attempts[0]["tier"] == "TRACE" \
        and out.attempts[0]["model"] == f"{tid}@v1" and out.attempts[0]["cost_usd"] == 0.0
    after = runner.store.get(tid)
    assert after.confidence == pytest.approx(0.775)            # 0.75 + 0.25 * 0.1
    assert (after.runs, after.successes, after.saved_usd) == (1, 1, pytest.approx(learned.trace.cost_usd))
    assert [r["decision"] for r in runner.audit.drain()][-2:] == ["allow", "allow"]   # replayed steps were judged


def test_same_tags_and_parameters_but_another_goal_never_applies(runner):
    tid = learn_version_trace(runner)
    goal = "Publish VERSION.txt as release 2.3.1 on the mirror"      # same parameter kinds, same tags
    assert runner.store.match(goal, 0.8, 0.0, 0.0) is None
    runner.api.push(PLAN, done("not published"))
    calls = len(runner.api.model_requests())
    out = runner.run("o3", goal, tags=["chore"])
    assert out.result["mode"] == "learner" and len(runner.api.model_requests()) == calls + 2
    assert runner.store.get(tid).runs == 0


def test_failed_validation_hands_over_to_the_learner_and_confidence_drops_by_0_7(runner):
    tid = learn_version_trace(runner)
    runner.store.conn.execute("UPDATE traces SET confidence=0.8 WHERE id=?", (tid,))
    runner.workspace("o4", dirs=("VERSION.txt",))       # exists (the precondition) but cannot be written
    runner.api.push(PLAN, step("shell", command="ls -d VERSION.txt"), done("VERSION.txt is a directory"))
    calls = len(runner.api.model_requests())
    out = runner.run("o4", "Set the version in VERSION.txt to 5.0.0 and verify it")
    assert (out.state, out.result["mode"], out.result["answer"]) == ("done", "learner", "VERSION.txt is a directory")
    prompts = runner.prompts()[calls:]
    assert len(prompts) == 3 and "check failed: exit_code: exit code 1, expected 0" in prompts[1]
    assert out.trace["follow"] == {"id": tid, "version": 1, "ok": False}
    v1 = runner.store.get(tid, 1)
    assert v1.confidence == pytest.approx(0.56) and (v1.runs, v1.failures) == (1, 1)   # 0.8 * 0.7
    assert not v1.active and runner.store.get(tid).version == 2                       # relearned: version 2
    assert runner.store.get(tid).confidence == 0.75


def test_governor_denial_inside_a_replay_fails_the_objective_and_the_trace(runner):
    runner.api.push(PLAN, step("read_file", path="docs/notes"), done("read it"))
    runner.workspace("o5", {"docs/notes": "hello\n"})
    out = runner.run("o5", "Show me the file docs/notes")
    assert out.result["mode"] == "learner"
    [row] = runner.store.rows()
    calls = len(runner.api.model_requests())
    runner.workspace("o6", {"keys/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n"})
    out = runner.run("o6", "Show me the file keys/id_rsa")
    assert len(runner.api.model_requests()) == calls
    assert out.state == "failed" and out.result["reason"].startswith("denied: files.secret ")
    assert out.loop["transcript"][0]["ran"] is False
    assert [r["decision"] for r in runner.audit.drain()][-1] == "deny"
    assert runner.store.get(row["id"]).confidence == pytest.approx(0.525)   # 0.75 * 0.7


def test_denial_in_a_replay_with_denials_to_spare_goes_to_the_learner(runner):
    runner.config = runner.config.model_copy(update={"governor": runner.config.governor.model_copy(
        update={"max_denials": 2})})
    runner.api.push(PLAN, step("read_file", path="docs/notes"), done("read it"))
    runner.workspace("o5", {"docs/notes": "hello\n"})
    runner.run("o5", "Show me the file docs/notes")
    runner.api.push(PLAN, done("that file is off limits"))
    runner.workspace("o6", {"keys/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n"})
    out = runner.run("o6", "Show me the file keys/id_rsa")
    assert (out.state, out.result["answer"]) == ("done", "that file is off limits")
    assert "DENIED by the governor (files.secret" in runner.prompts()[-1]


@pytest.mark.parametrize("edit, problem", [
    (lambda b: b.replace('"type":"exit_code"', '"type":"always_pass"', 1), "steps[0].expect[0]"),
    (lambda b: b.replace('"pattern":"^(?P<out1>', '"pattern":"^(?P<out1', 1), "expected a Python regular expression"),
    (lambda b: b.replace("{{version1}}", "{{release}}", 1), "found {{release}}"),
    (lambda b: b[:-5], "invalid JSON"),
])
def test_a_hand_edited_trace_is_a_clear_error_and_never_used(runner, edit, problem):
    tid = learn_version_trace(runner)
    body = runner.store.rows()[0]["body"]
    edited = edit(body)
    assert edited != body
    runner.store.conn.execute("UPDATE traces SET body=?, confidence=1.0 WHERE id=?", (edited, tid))
    with pytest.raises(Exception) as info:
        runner.store.get(tid)
    assert f"trace {tid} v1" in str(info.value) and problem in str(info.value)
    assert runner.store.match("Set the version in A.txt to 1.1.1 and verify it", 0.8, 0.0, 0.0) is None
    runner.api.push(PLAN, done("learner ran"))
    out = runner.run("o7", "Set the version in A.txt to 1.1.1 and verify it")
    assert (out.result["mode"], out.result["answer"]) == ("learner", "learner ran")


def test_trace_below_the_follow_threshold_is_not_followed_without_supervision(tmp_path, api):
    runner = Runner(tmp_path, api, supervise_from=None)        # default traces.follow_threshold 0.9
    learn_version_trace(runner)
    runner.api.push(*learner("7.7.7"))
    runner.workspace("o8", {"VERSION.txt": "0.1.0\n"})
    calls = len(api.model_requests())
    out = runner.run("o8", "Set the version in VERSION.txt to 7.7.7 and verify it")
    assert out.result["mode"] == "learner" and len(api.model_requests()) == calls + 4
    [row] = runner.store.rows()            # the learner reproduced the steps: a confirmation, not a new version
    assert (row["version"], row["confidence"], row["successes"]) == (1, pytest.approx(0.775), 1)
    runner.store.close()


def test_free_text_without_a_tier_able_to_plan_ends_unresolved_at_once(tmp_path, api):
    runner = Runner(tmp_path, api)
    config = runner.config.model_copy(update={"tiers": {**runner.config.tiers, "API_FALLBACK": [
        runner.config.tiers["LOCAL_QUALITY"][0]]}})
    runner.workspace("o9")
    out = runner.run("o9", "Tidy up the repository", config=config)
    assert out.state == "unresolved" and out.result["reason"].startswith(
        "no tier able to plan (tried LOCAL_QUALITY, API_FALLBACK): every tier unavailable")
    assert out.result["steps"] == 0 and api.model_requests() == []
    no_plan = config.model_copy(update={"actions": {k: v for k, v in config.actions.items() if k != "plan"}})
    out = runner.run("o10", "Tidy up the repository", config=no_plan)
    assert (out.state, out.result["reason"]) == ("unresolved", "no tier able to plan: the config has no actions.plan")
    runner.store.close()


def test_unusable_plan_ends_unresolved(runner):
    runner.api.push('{"steps": "just do it"}')
    runner.workspace("o11")
    out = runner.run("o11", "Tidy up the repository")
    assert out.state == "unresolved" and "no usable plan from API_FALLBACK/claude-fake" in out.result["reason"]


def test_a_value_that_changes_a_commands_words_does_not_apply(runner):
    runner.api.push(PLAN, step("shell", command="grep -rc TODO src/"), done("counted TODO"))
    runner.workspace("o12", {"src/a.py": "# TODO\n"})
    runner.run("o12", "Count the 'TODO' markers in src/")
    [row] = runner.store.rows()
    runner.api.push(PLAN, done("learner counted"))
    runner.workspace("o13", {"src/a.py": "# FIX ME\n"})
    out = runner.run("o13", "Count the 'FIX ME' markers in src/")         # unquoted in the command: 2 words
    assert (out.result["mode"], out.result["answer"]) == ("learner", "learner counted")
    assert out.trace is None or "follow" not in out.trace                   # not a failure of the trace
    assert runner.store.get(row["id"]).runs == 0
