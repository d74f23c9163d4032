"""The agent loop in-process: the real router (its LOCAL_FAST tier is the
loopback Anthropic fake), the real governor with the shipped policy, real
tools in a temporary workspace.  Redis-free: parking is tested in
test_parking.py, the daemon path in tests/daemon/test_agent_governor.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from swarmd.config import GovernorConfig, parse_config
from swarmd.governor import AuditBuffer, Governor, load_policy
from swarmd.router import Router
from swarmd.agent.loop import parse_step, render_input, run_agent, workspace_dir
from tests.fakes import closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic

REPO = Path(__file__).resolve().parents[2]


def agent_config(url: str):
    data = yaml.safe_load((REPO / "src" / "swarmd" / "llm_config.yaml").read_text())
    common = {"price_per_mtok_in": 1.0, "price_per_mtok_out": 5.0, "context_window": 8192, "timeout_s": 5,
              "max_output_tokens": 128}
    dead = closed_port_url()
    data["tiers"] = {
        "LOCAL_FAST": [{"provider": "anthropic", "model": "fake", "base_url": url, **common}],
        "LOCAL_QUALITY": [{"provider": "ollama", "model": "m", "hosts": [dead], **common}],
        "API_FALLBACK": [{"provider": "anthropic", "model": "fake-api", "base_url": dead, **common}],
    }
    data["actions"]["agent"]["tier"] = "LOCAL_FAST"
    return parse_config(yaml.safe_dump(data), "test", env={"ANTHROPIC_API_KEY": "sk-ant-test"})


def step(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


@pytest.fixture
def governor():
    return Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"), audit=AuditBuffer())


def run(replies, tmp_path, governor, resume=None, **cfg):
    with FakeAnthropic(replies) as api:
        router = Router(agent_config(api.url))
        try:
            out = run_agent({"id": "o1", "action": "agent", "input": "do the thing"}, router, governor,
                            GovernorConfig(**cfg), workspace_dir(tmp_path, "o1"), resume=resume)
        finally:
            router.close()
        prompts = [r.json["messages"][0]["content"].rsplit("Objective:", 1)[-1] for r in api.model_requests()]
    return out, prompts


@pytest.mark.parametrize("reply, expected", [
    ('{"done": "42"}', {"done": "42"}),
    ('{"done": {"n": 1}}', {"done": '{"n": 1}'}),
    ('{"tool": "shell", "args": {"command": "ls"}}', {"tool": "shell", "args": {"command": "ls"}}),
])
def test_parse_step_accepts_steps(reply, expected):
    assert parse_step(reply) == (expected, None)


@pytest.mark.parametrize("reply, why", [
    ("not json", "not JSON"), ("[1]", "expected a JSON object"), ('{"tool": "shell"}', 'expected {"tool"'),
    ('{"tool": "rm_rf", "args": {}}', "unknown tool 'rm_rf'"), (None, "not JSON"),
])
def test_parse_step_explains_bad_replies(reply, why):
    step_, problem = parse_step(reply)
    assert step_ is None and why in problem


def test_render_input_keeps_the_newest_steps_within_the_limit():
    transcript = [{"n": i, "tool": "shell", "args": {"command": f"echo {i}"}, "decision": "allow",
                   "rule": "r", "reason": "x", "ran": True, "exit_code": 0, "output": "o" * 300, "error": None}
                  for i in range(1, 40)]
    text = render_input("objective text", transcript, output_chars=300, limit=4000)
    assert len(text) <= 4000 and text.startswith("Objective: objective text\nSteps so far: (")
    assert 'echo 39"' in text and 'echo 1"' not in text and "earlier step(s) not shown" in text
    assert render_input("x", [], 10).endswith("Steps so far: none")


def test_allowed_tool_output_is_fed_back_truncated(tmp_path, governor):
    out, prompts = run([step("shell", command="seq 1 500"), '{"done": "counted"}'], tmp_path, governor,
                       output_chars=20)
    assert (out.state, out.result["answer"], out.result["steps"]) == ("done", "counted", 2)
    ran = out.loop["transcript"][0]
    assert ran["ran"] and ran["exit_code"] == 0 and ran["output"].startswith("1\n2\n3") and ran["output"].endswith(
        "[truncated]")
    assert "-> allow, exit 0, output: 1 2 3" in prompts[1]
    assert [r["decision"] for r in governor.audit.drain()] == ["allow"]
    assert out.result["cost_usd"] > 0 and len(out.attempts) == 2


def test_deny_is_told_to_the_model_until_max_denials(tmp_path, governor):
    out, prompts = run([step("read_file", path="/etc/shadow"), step("shell", command="cat ~/.ssh/id_rsa"),
                        '{"done": "never"}'], tmp_path, governor, max_denials=2)
    assert out.state == "failed" and out.result["reason"].startswith("denied: files.secret ")
    assert len(prompts) == 2 and "DENIED by the governor (files." in prompts[1]
    assert [r["decision"] for r in governor.audit.drain()] == ["deny", "deny"]


def test_max_steps_ends_unresolved(tmp_path, governor):
    out, prompts = run(['{"thought": "hmm"}'], tmp_path, governor, max_steps=3)
    assert out.state == "unresolved" and "max_steps=3" in out.result["reason"]
    assert len(prompts) == 3 and "invalid reply" in prompts[2]


def test_no_usable_reply_from_any_tier_ends_unresolved(tmp_path, governor):
    out, _ = run(["definitely not json"], tmp_path, governor)
    assert out.state == "unresolved" and out.result["reason"].startswith("no usable next step from any tier")
    assert "JSON does not parse" in out.attempts[0]["error"]


def test_ask_parks_with_the_pending_action_and_resume_runs_it(tmp_path, governor):
    (workspace_dir(tmp_path, "o1") / "old.txt").write_text("x")
    out, _ = run([step("shell", command="rm old.txt")], tmp_path, governor)
    assert out.state == "awaiting_approval" and out.pending[0] == "shell"
    why = "rm old.txt: deleting files needs a human even inside the workspace"    # policy.yaml's shell-rm reason
    assert out.result["pending"] == {"tool": "shell", "args": {"command": "rm old.txt"}, "rule": "shell-rm",
                                     "reason": why}
    assert (out.pending[2].rule, out.pending[2].reason) == ("shell-rm", why)
    record = {"tool": "shell", "args": {"command": "rm old.txt"}, "loop": out.loop,
              "resolution": {"decision": "approve", "by": "me", "ts": 0, "rule": "approval.approved",
                             "reason": "approved by me"}}
    again, prompts = run(['{"done": "removed"}'], tmp_path, governor, resume=record)
    assert (again.state, again.result["answer"], again.result["steps"]) == ("done", "removed", 2)
    assert not (tmp_path / "workspaces" / "o1" / "old.txt").exists()
    assert "rm old.txt\"} -> allow, exit 0" in prompts[0]


def test_approved_action_that_is_now_denied_does_not_run(tmp_path, governor):
    loop = {"transcript": [], "steps": 1, "denials": 0, "cost_usd": 0.0, "escalations": 0}
    record = {"tool": "shell", "args": {"command": "rm /etc/hostname"}, "loop": loop,
              "resolution": {"decision": "approve", "by": "me", "ts": 0, "rule": "approval.approved",
                             "reason": "approved by me"}}
    out, prompts = run(['{"done": "x"}'], tmp_path, governor, resume=record)
    assert out.state == "failed" and out.result["reason"].startswith("denied: files.outside-workspace")
    assert prompts == [] and [r["rule"] for r in governor.audit.drain()] == ["files.outside-workspace"]
