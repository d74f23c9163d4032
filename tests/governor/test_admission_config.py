"""Admission rules in the policy, the ``governor:`` config section, and the
shipped ``agent`` action."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from swarmd.config import ConfigError, load_config, parse_config
from swarmd.governor import Governor, PolicyError, load_policy, parse_policy
from swarmd.router.prompts import build_prompt

REPO = Path(__file__).resolve().parents[2]


def _gov(admission: str) -> Governor:
    return Governor(parse_policy(f"version: 1\nadmission:\n{admission}"))


def test_admission_refuses_listed_actions_and_tags():
    gov = _gov("  deny_actions: [agent]\n  deny_tags: ['untrusted-*', prod]\n")
    assert gov.admit("agent", []).rule == "admission.deny-action"
    d = gov.admit("classify", ["x", "untrusted-web"])
    assert (d.decision, d.rule) == ("deny", "admission.deny-tag") and "untrusted-web" in d.reason
    assert gov.admit("classify", ["production"]).decision == "allow"


def test_no_admission_section_admits_everything():
    gov = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"))
    assert gov.admit("agent", ["anything"]).decision == "allow"


def test_admission_section_is_validated_with_its_line():
    with pytest.raises(PolicyError) as e:
        parse_policy("version: 1\nadmission:\n  deny_action: [agent]\n", "p.yaml")
    assert e.value.key_path == "admission.deny_action" and e.value.line == 3


def _config(governor: dict) -> str:
    data = yaml.safe_load((REPO / "src" / "swarmd" / "llm_config.yaml").read_text())
    data["governor"] = governor
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("section, key", [({"max_steps": 0}, "governor.max_steps"),
                                          ({"approval_timeout_s": -1}, "governor.approval_timeout_s"),
                                          ({"max_denails": 2}, "governor.max_denails")])
def test_governor_section_is_validated_with_file_and_line(section, key):
    text = _config(section)
    with pytest.raises(ConfigError) as e:
        parse_config(text, "cfg.yaml", env={})
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.strip().startswith(key.split(".")[1]))
    assert e.value.key == key and e.value.line == line and str(e.value).startswith(f"cfg.yaml:{line}:")


def test_policy_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "llm_config.yaml"
    path.write_text(_config({"policy": "rules/policy.yaml"}))
    cfg = load_config(path, env={})
    assert cfg.policy_path == tmp_path / "conf" / "rules" / "policy.yaml"
    path.write_text(_config({"policy": "/etc/swarmd/policy.yaml"}))
    cfg = load_config(path, env={})
    assert str(cfg.policy_path) == "/etc/swarmd/policy.yaml"


def test_shipped_config_has_the_agent_action_and_governor_defaults():
    cfg = load_config(REPO / "src" / "swarmd" / "llm_config.yaml", env={})
    g = cfg.governor
    assert (g.approval_timeout_s, g.max_steps, g.max_denials) == (3600, 8, 1)
    assert cfg.policy_path == REPO / "src" / "swarmd" / "policy.yaml"
    assert cfg.actions["agent"].output == "json" and cfg.actions["agent"].tier != "LOCAL_FAST"
    prompt = build_prompt(cfg.actions["agent"], "Objective: x\nSteps so far: none")
    assert '{"done": "final answer"}' in prompt.text and prompt.text.endswith("Next step:")
