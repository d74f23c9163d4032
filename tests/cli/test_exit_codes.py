"""One exit-code rule for every command (:data:`swarmd.errors.EXIT_RULE`):
0 ok; 1 no accepted answer (``ask``, ``submit --wait``, ``show``); 2 bad
input or usage; 3 the daemon or its Redis cannot be reached.  Each command
is run for real (the suite's redis-server, loopback fakes for Ollama and
Anthropic); the objective states ``submit --wait`` and ``show`` read are
written into the daemon's Redis mirror the way the daemon writes them
(:func:`swarmd.objectives.mirror_state`, which never overwrites a final
state, so ``submit --id X --wait`` of a finished X sees its state)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from swarmd import constants as K
from swarmd.cli import main as swarmctl
from swarmd.cli.daemon import main as swarmd
from swarmd.objectives import mirror_state
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import make_config
from tests.fakes.ollama_server import FakeOllama


def _dead_url() -> str:
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


@pytest.fixture
def env(tmp_path, monkeypatch, capsys):
    """(run(*argv) -> (code, stdout, stderr) with --config and --data-dir set, config file, data dir)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    for name in ("SWARMD_CONFIG", "REDIS_URL", "SWARMD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "cfg.yaml"

    def run(*argv: str, fast=None, quality=None, api=None):
        config = make_config(*(f.url if f else "http://127.0.0.1:9" for f in (fast, quality, api)))
        cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
        capsys.readouterr()
        code = swarmctl(["--config", str(cfg), "--data-dir", str(data), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


SURE, UNSURE = math.log(0.95), math.log(0.3)


def test_ask(env, tmp_path):
    with FakeOllama([Answer("fix", logprobs=[SURE])]) as fast, FakeOllama() as quality, FakeAnthropic() as api:
        assert env("ask", "--action", "classify", "--labels", "feat,fix", "--input", "fix x", "--no-ledger",
                   fast=fast, quality=quality, api=api)[0] == 0
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("fix", logprobs=[UNSURE])]) as quality, FakeAnthropic(["banana"]) as api:
        assert env("ask", "--action", "classify", "--labels", "feat,fix", "--input", "fix x", "--no-ledger",
                   fast=fast, quality=quality, api=api)[0] == 1
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "fix x"}\n{"id": "b", "text": "fix y"}\n')
    with FakeOllama([Answer("fix", logprobs=[SURE]), Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("fix", logprobs=[UNSURE])]) as quality, FakeAnthropic(["banana"]) as api:
        code, out, _ = env("ask", "--action", "classify", "--labels", "feat,fix", "--file", str(items),
                           "--no-ledger", fast=fast, quality=quality, api=api)
    assert code == 1 and len(out.splitlines()) == 2                  # any item unresolved: 1, every line printed
    assert env("ask", "--action", "nope", "--input", "x", "--no-ledger")[0] == 2
    assert env("ask", "--action", "classify")[0] == 2


def test_submit_wait(env, redis_url, redis_conn):
    for oid, state in (("d1", "done"), ("u1", "unresolved"), ("f1", "failed")):
        mirror_state(redis_conn, oid, {"state": state, "action": "classify"}, 600)
    submit = ("submit", "--action", "yes_no", "--input", "is 9 prime?", "--redis-url", redis_url, "--wait",
              "--timeout", "60")
    assert env(*submit, "--id", "d1")[0] == 0
    assert env(*submit, "--id", "u1")[0] == 1                    # ended unresolved
    assert env(*submit, "--id", "f1")[0] == 1                    # ended failed
    code, _, err = env(*submit[:-1], "0.2", "--id", "never")     # nobody runs it: the wait times out
    assert code == 1 and "timed out" in err
    assert env("submit", "--action", "yes_no", "--input", "x", "--redis-url", redis_url)[0] == 0
    assert env("submit", "--action", "nope", "--input", "x", "--redis-url", redis_url)[0] == 2
    assert env("submit", "--action", "yes_no", "--input", "x", "--redis-url", _dead_url())[0] == 3


def test_show(env, redis_url, redis_conn):
    for oid, state in (("d1", "done"), ("u1", "unresolved"), ("f1", "failed"), ("q1", "queued")):
        mirror_state(redis_conn, oid, {"state": state, "action": "classify",
                                       "result": json.dumps({"answer": "fix"})}, 600)
    for oid, code in (("d1", 0), ("q1", 0), ("u1", 1), ("f1", 1)):
        assert env("show", oid, "--redis-url", redis_url)[0] == code, oid
        assert env("show", oid, "--json", "--redis-url", redis_url)[0] == code, oid
    assert env("show", "nobody", "--redis-url", redis_url)[0] == 2
    assert env("show", "d1", "--redis-url", _dead_url())[0] == 3


def test_status(env, redis_url, redis_conn):
    assert env("status", "--redis-url", redis_url)[0] == 3          # no heartbeat: the daemon is not running
    redis_conn.hset(K.HEARTBEAT, mapping={"pid": os.getpid(), "host": "h", "started_at": time.time(),
                                          "ts": time.time() + 3600, "interval_s": 2})
    assert env("status", "--redis-url", redis_url, "--json")[0] == 0
    assert env("status", "--redis-url", _dead_url())[0] == 3


def test_store_commands_ok_and_bad_input(env, tmp_path):
    from swarmd.costs import Ledger, LedgerRow
    for argv in (["memory", "stats"], ["traces", "list"], ["feedback", "x", "--answer", "fix"], ["audit"]):
        assert env(*argv)[0] == 2, argv                             # no store in the data dir
    Ledger(tmp_path / "data" / "memory.db").record(
        LedgerRow("classify", "LOCAL_FAST", "ollama", "small", 10, 1, 0.0, 5, 0.9, "accepted", "o"))
    assert env("report", "--no-write")[0] == 0
    assert env("report", "--since", "yesterday")[0] == 2
    assert env("memory", "stats")[0] == 0
    assert env("traces", "list")[0] == 0
    assert env("cost-analysis", "--simulate", "--days", "3")[0] == 0
    assert env("cost-analysis", "--simulate", "--days", "-1")[0] == 2
    assert env("no-such-command")[0] == 2
    assert env("status", "--no-such-flag")[0] == 2


def test_policy_commands(env, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    actions = tmp_path / "actions.jsonl"
    actions.write_text(json.dumps({"id": "a", "tool": "shell", "args": {"command": "rm -rf /"}}) + "\n")
    code, out, err = env("policy", "check", "--policy", str(policy), "--workspace", str(tmp_path),
                         "--file", str(actions))
    assert code == 0, err                                        # judged (denied): 0, whatever the decision
    actions.write_text("{not json\n")
    assert env("policy", "check", "--policy", str(policy), "--file", str(actions))[0] == 2
    assert env("policy", "check", "--policy", str(tmp_path / "none.yaml"), "--tool", "shell", "--arg", "ls")[0] == 2


def test_swarmd_usage_and_unreachable(capsys):
    assert swarmd(["--workers", "-1"]) == 2
    assert swarmd(["--no-such-flag"]) == 2
    assert swarmd(["worker", "--redis-url", _dead_url()]) == 3


@pytest.mark.parametrize("prog", ["swarmctl", "swarmd"])
def test_the_rule_is_in_help(prog):
    module = "swarmd.cli" if prog == "swarmctl" else "swarmd"
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "exit codes (the same rule for every command)" in text
    assert "1 no accepted answer" in text and "2 bad input or usage" in text and "3 the daemon or its Redis" in text
