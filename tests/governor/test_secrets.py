"""Nothing secret leaves (issue 21, deliverable 4): one redactor (governor/secrets.py) on tool
outputs and errors, audit entries, log lines, prompts, agent traces and results, covering the process's own secret values (API
key, Redis password, tokens from the config and the environment) and detect-secrets' rule set;
the mask scan never fails open; git config credentials are scrubbed."""

from __future__ import annotations

import os
import secrets as pysecrets
import subprocess

import pytest
from loguru import logger

from swarmd.config import load_config
from swarmd.governor import Governor, load_policy, secrets
from swarmd.governor import sandbox as sandbox_mod
from swarmd.governor.audit import AuditLog
from swarmd.governor.execute import run_tool
from swarmd.governor.sandbox import probe

from .conftest import REPO, make_workspace, table_resolver
from .test_agent_loop import run as run_loop
from .test_agent_loop import step


@pytest.fixture()
def planted(tmp_path, monkeypatch):
    """Secrets of this process: an API key in the config, a Redis password and a token in the
    environment (random: no pattern can find them, only the process's own values)."""
    api_key = "k" + pysecrets.token_hex(20)
    redis_pw = pysecrets.token_hex(12)
    token = pysecrets.token_hex(16)
    monkeypatch.setenv("REDIS_URL", f"redis://:{redis_pw}@127.0.0.1:6379/0")
    monkeypatch.setenv("MY_SERVICE_TOKEN", token)
    secrets.refresh_environment()
    secrets.register_config(load_config(REPO / "src" / "swarmd" / "llm_config.yaml", env={"ANTHROPIC_API_KEY": api_key}))
    ws = make_workspace(tmp_path)
    (ws / "notes_secret.txt").write_text(f"api={api_key}\nredis={redis_pw}\ntoken={token}\naws=AKIAIOSFODNN7EXAMPLE\n")
    return str(ws), (api_key, redis_pw, token, "AKIAIOSFODNN7EXAMPLE")


def leaked(text: str, values) -> list[str]:
    return [v for v in values if v in (text or "")]


@pytest.mark.skipif(not probe().available, reason="bwrap not usable here")
def test_tool_outputs_and_errors_never_carry_secrets(policy, planted):
    ws, values = planted
    gov = Governor(policy, resolver=table_resolver)
    for tool, args in (("shell", {"command": "cat notes_secret.txt"}), ("read_file", {"path": "notes_secret.txt"}),
                       ("shell", {"command": f"ls {values[2]}"})):
        r = run_tool(gov, tool, args, ws)
        assert r.ran, r
        assert not leaked(r.output, values) and not leaked(r.error, values), (tool, r)
    assert "[REDACTED]" in run_tool(gov, "read_file", {"path": "notes_secret.txt"}, ws).output


def test_audit_rows_and_log_lines_never_carry_secrets(policy, planted, tmp_path):
    ws, values = planted
    audit = AuditLog(str(tmp_path / "memory.db"))
    gov = Governor(policy, resolver=table_resolver, audit=audit)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    try:
        for v in values:
            gov.decide("shell", {"command": f"echo {v} > out.txt"}, ws, objective_id="obj-secret")
        logger.info("connecting with key {} and password {}", values[0], values[1])
    finally:
        logger.remove(sink)
    rows = audit.query("obj-secret")
    assert len(rows) == len(values)
    assert not leaked(repr([(r.args, r.reason) for r in rows]), values)
    assert lines and not leaked("".join(lines), values)


def test_rule_set_is_detect_secrets(planted):
    """Credentials nobody registered are found by the maintained rule set."""
    text = ("ghp_" + "a1B2" * 9 + " xoxb-1234567890-abcdefghij sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
            + ' password = "s3cr3t-passw0rd"')
    out = secrets.redact(text)
    assert "a1B2a1B2a1B2" not in out and "4eC39HqLyjWDarjtT1zdp7dc" not in out and "s3cr3t-passw0rd" not in out


@pytest.mark.skipif(not probe().available, reason="bwrap not usable here")
def test_mask_scan_over_its_limit_refuses(policy, tmp_path, monkeypatch):
    """A workspace too big to search for secret files: the command is refused, never run unmasked."""
    ws = make_workspace(tmp_path)
    deep = ws / "z" / "y" / "x"
    deep.mkdir(parents=True)
    token = pysecrets.token_hex(16)
    (deep / "id_rsa").write_text(f"TOKEN {token}\n")
    monkeypatch.setattr(sandbox_mod, "MASK_SCAN_LIMIT", 5)
    r = run_tool(Governor(policy, resolver=table_resolver), "shell", {"command": "grep -r TOKEN z"}, str(ws))
    assert r.decision.decision == "allow" and not r.ran and "refused" in (r.error or ""), r
    assert token not in r.output


def test_scrub_git_config_removes_credentials(tmp_path):
    repo = str(tmp_path / "r")
    tok = pysecrets.token_hex(10)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    for cmd in (["init", "-q", repo], ["-C", repo, "remote", "add", "origin", f"https://bot:{tok}@example.com/r.git"],
                ["-C", repo, "config", "http.extraheader", f"AUTHORIZATION: basic {tok}"],
                ["-C", repo, "config", "http.https://example.com/.extraheader", f"Authorization: Bearer {tok}"],
                ["-C", repo, "config", f"url.https://x:{tok}@example.com/.insteadOf", "https://example.com/"]):
        subprocess.run(["git", *cmd], check=True, env=env)
    changed = secrets.scrub_git_config(repo)
    assert len(changed) == 4, changed
    listed = subprocess.run(["git", "-C", repo, "config", "--local", "--list"], capture_output=True, text=True,
                            env=env, check=True).stdout
    assert tok not in listed and "remote.origin.url=https://example.com/r.git" in listed


def test_prompts_traces_and_results_never_carry_secrets(planted, tmp_path):
    """The agent loop for real (fake model server): a tool output with the planted secrets goes
    into the next prompt, the model echoes a secret as its answer; the prompts the model got,
    the loop's trace and the result carry none."""
    ws_src, values = planted
    gov = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"), resolver=table_resolver)
    ws = tmp_path / "data"
    (ws / "workspaces" / "o1").mkdir(parents=True)
    (ws / "workspaces" / "o1" / "notes_secret.txt").write_text(open(os.path.join(ws_src, "notes_secret.txt")).read())
    out, prompts = run_loop([step("read_file", path="notes_secret.txt"), '{"done": "key ' + values[0] + '"}'],
                            ws, gov)
    assert out.state == "done", out
    assert len(prompts) == 2 and "[REDACTED]" in prompts[1]
    assert not leaked(repr(prompts), values) and not leaked(repr(out.result), values)
    assert not leaked(repr(out.loop), values)
