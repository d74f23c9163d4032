"""Supervised following: a trace below ``traces.follow_threshold`` (0.9, as
shipped) but at least ``traces.supervise_from`` (0.75, a new trace) is
replayed through the real governor and tools, then the strong tier (the
Anthropic fake through the official client) verifies the outcome with one
yes/no call; verified → done, rejected → the learner takes over, c × 0.7."""

from __future__ import annotations

import pytest

from tests.fakes import Answer
from tests.traces.conftest import PRICES, Runner, done, step
from tests.traces.test_follower import PLAN, learn_version_trace

GOAL2 = "Set the version in RELEASE.txt to 4.0.2 and verify it"
ANSWER2 = "RELEASE.txt holds 4.0.2 (1 line)"


@pytest.fixture
def runner(tmp_path, api):
    r = Runner(tmp_path, api)                   # the shipped thresholds: follow 0.9, supervise from 0.75
    assert (r.config.traces.follow_threshold, r.config.traces.supervise_from) == (0.9, 0.75)
    yield r
    r.store.close()


def replay_release(runner: Runner, *replies):
    """Learn the version trace, then run GOAL2 with ``replies`` scripted
    after it; returns ``(trace id, outcome, prompts of GOAL2's calls)``."""
    tid = learn_version_trace(runner)
    runner.api.push(*replies)
    calls = len(runner.api.model_requests())
    runner.workspace("o2", {"RELEASE.txt": "1.0.0\n"})
    out = runner.run("o2", GOAL2)
    return tid, out, runner.prompts()[calls:]


def test_a_verified_supervised_replay_is_done_and_counts_as_a_success(runner):
    tid, out, prompts = replay_release(runner, Answer("yes", tokens_in=60, tokens_out=1))
    assert (out.state, out.result["mode"], out.result["answer"]) == ("done", "supervised", ANSWER2)
    assert (runner.tmp_path / "workspaces" / "o2" / "RELEASE.txt").read_text() == "4.0.2\n"
    [verify] = prompts                                          # one call: the verification
    assert verify.startswith("A stored procedure was replayed for a new goal.")
    assert verify.endswith(f"Goal: {GOAL2} Answer: {ANSWER2} Steps: "
                           "1. shell: printf '%s\\n' 4.0.2 > RELEASE.txt; checks ok: exit_code 0; output: (none) "
                           "2. shell: grep -c 4.0.2 RELEASE.txt; checks ok: exit_code 0; output_matches out1='1'; "
                           "output: 1\nVerified:")
    assert [(a["tier"], a.get("action"), a["mode"], a["outcome"]) for a in out.attempts] == [
        ("TRACE", None, "supervised", "accepted"), ("API_FALLBACK", "verify_trace", "supervised", "accepted")]
    verify_cost = (60 * PRICES[0] + 1 * PRICES[1]) / 1e6
    assert out.result["cost_usd"] == pytest.approx(verify_cost)
    after = runner.store.get(tid)
    assert after.confidence == pytest.approx(0.75 + (1 - 0.75) * 0.1) == pytest.approx(0.775)
    assert (after.runs, after.successes, after.failures) == (1, 1, 0)
    assert after.saved_usd == pytest.approx(after.trace.cost_usd - verify_cost)
    assert [r["decision"] for r in runner.audit.drain()][-2:] == ["allow", "allow"]   # replayed steps were judged


def test_a_rejected_verification_hands_over_to_the_learner_and_confidence_drops_by_0_7(runner):
    tid, out, prompts = replay_release(runner, "no", PLAN, done("RELEASE.txt holds 4.0.2, checked by hand"))
    assert (out.state, out.result["mode"], out.result["answer"]) == (
        "done", "learner", "RELEASE.txt holds 4.0.2, checked by hand")
    assert len(prompts) == 3 and prompts[0].endswith("\nVerified:")
    # the learner continues from the replayed steps; the last one says why it was not accepted
    assert "check failed: verification: API_FALLBACK/claude-fake judged the answer wrong" in prompts[2]
    assert [(a["tier"], a.get("action"), a["mode"]) for a in out.attempts] == [
        ("TRACE", None, "supervised"), ("API_FALLBACK", "verify_trace", "supervised"),
        ("API_FALLBACK", "plan", "learner"), ("API_FALLBACK", None, "learner")]
    assert out.attempts[0]["outcome"] == "rejected" and out.attempts[0]["error"].startswith("not verified: ")
    assert out.trace["follow"] == {"id": tid, "version": 1, "ok": False}
    v1 = runner.store.get(tid, 1)
    assert v1.confidence == pytest.approx(0.75 * 0.7) == pytest.approx(0.525)
    assert (v1.runs, v1.successes, v1.failures) == (1, 0, 1)


def test_a_malformed_verdict_is_not_a_verification(runner):
    """'maybe' is no yes/no: the gate scores it 0, no tier is left, the replay
    is not verified and the learner runs.  No judgement was made, so the
    trace is not penalised; the learner reproduces its steps and answer,
    which confirms it."""
    tid, out, prompts = replay_release(runner, "maybe", PLAN, done(ANSWER2))
    assert (out.state, out.result["mode"], out.result["answer"]) == ("done", "learner", ANSWER2)
    assert len(prompts) == 3 and "check failed: verification: no usable verdict: no tier reached confidence" \
        in prompts[2]
    verify = out.attempts[1]
    assert (verify["action"], verify["answer"], verify["confidence"], verify["outcome"]) == (
        "verify_trace", "maybe", 0.0, "rejected")
    assert out.attempts[0]["outcome"] == "rejected"
    assert "follow" not in out.trace
    after = runner.store.get(tid)
    assert (after.version, after.runs, after.successes, after.failures) == (1, 1, 1, 0)
    assert after.confidence == pytest.approx(0.775)


def test_a_governor_denial_inside_a_supervised_replay_fails_without_a_verification(runner):
    runner.api.push(PLAN, step("read_file", path="docs/notes"), done("read it"))
    runner.workspace("o5", {"docs/notes": "hello\n"})
    assert runner.run("o5", "Show me the file docs/notes").result["mode"] == "learner"
    [row] = runner.store.rows()
    calls = len(runner.api.model_requests())
    runner.workspace("o6", {"keys/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n"})
    out = runner.run("o6", "Show me the file keys/id_rsa")
    assert len(runner.api.model_requests()) == calls                 # nothing to verify: it never ran
    assert (out.state, out.result["mode"]) == ("failed", "supervised")
    assert out.result["reason"].startswith("denied: files.secret ")
    assert out.loop["transcript"][0]["ran"] is False
    assert [(a["tier"], a["mode"], a["outcome"]) for a in out.attempts] == [("TRACE", "supervised", "rejected")]
    assert [r["decision"] for r in runner.audit.drain()][-1] == "deny"
    assert runner.store.get(row["id"]).confidence == pytest.approx(0.75 * 0.7)


@pytest.mark.parametrize("confidence, mode, calls", [
    (0.9, "follower", 0),              # at the follow threshold: unsupervised, no model call
    (0.8999, "supervised", 1),         # just below: replayed and verified
    (0.7499, "learner", 4),            # below the floor: the learner (plan, two steps, answer)
])
def test_the_confidence_band_decides_how_a_trace_is_followed(runner, confidence, mode, calls):
    tid = learn_version_trace(runner)
    runner.store.conn.execute("UPDATE traces SET confidence=? WHERE id=?", (confidence, tid))
    runner.api.push(*(["yes"] if mode == "supervised" else []),
                    *([PLAN, step("shell", command="printf '%s\\n' 4.0.2 > RELEASE.txt"),
                       step("shell", command="grep -c 4.0.2 RELEASE.txt"), done(ANSWER2)] if mode == "learner" else []))
    before = len(runner.api.model_requests())
    runner.workspace("o2", {"RELEASE.txt": "1.0.0\n"})
    out = runner.run("o2", GOAL2)
    assert (out.state, out.result["mode"], out.result["answer"]) == ("done", mode, ANSWER2)
    assert len(runner.api.model_requests()) - before == calls


def test_without_the_verify_action_nothing_is_supervised(tmp_path, api):
    runner = Runner(tmp_path, api)
    config = runner.config.model_copy(update={"actions": {
        k: v for k, v in runner.config.actions.items() if k != "verify_trace"}})
    runner.config = config
    learn_version_trace(runner)
    runner.api.push(PLAN, done("learner ran"))
    runner.workspace("o2", {"RELEASE.txt": "1.0.0\n"})
    out = runner.run("o2", GOAL2)
    assert (out.result["mode"], out.result["answer"]) == ("learner", "learner ran")
    assert [(a["tier"], a["mode"]) for a in out.attempts] == [("API_FALLBACK", "learner")] * 2   # nothing replayed
    runner.store.close()
