"""Export: verified records only, deduplicated, no planted secret survives."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from swarmd.errors import BadInput
from swarmd.memory.export import export, scrub
from swarmd.memory.records import Verified
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import make_config
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import LABELS, SURE, UNSURE

# planted secrets (fake values of the real formats)
SECRETS = {
    "anthropic-key": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "openai-key": "sk-proj-ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210",
    "aws-access-key": "AKIAIOSFODNN7EXAMPLE",
    "github-token": "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "slack-token": "xoxb-123456789012-abcdefghijkl",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
}


def test_no_planted_secret_survives_scrubbing():
    text = " | ".join(SECRETS.values()) + " | https://deploy:hunter2@example.com/x | password = 'letmein' token: abc123"
    counter = Counter()
    clean = scrub(text, counter)
    for value in list(SECRETS.values()) + ["hunter2", "letmein", "abc123"]:
        assert value not in clean
    assert "password = [REDACTED:assignment]" in clean and "https://[REDACTED:url-credentials]@example.com" in clean
    assert set(counter) == set(SECRETS) | {"url-credentials", "assignment"}


def test_export_holds_verified_records_only_deduplicated_and_scrubbed(swarm_factory, tmp_path):
    with FakeOllama([Answer("fix", logprobs=[SURE]), Answer("fix", logprobs=[UNSURE])]) as fast, \
            FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        labels = ",".join(LABELS)
        swarm.run({"id": "e-1", "action": "classify", "input": "gate alone accepted this", "labels": labels},
                  {"id": "e-2", "action": "classify", "input": f"rotate key {SECRETS['aws-access-key']}", "labels": labels})
    memory = swarm.daemon.memory
    memory.add(Verified("classify", LABELS, f"ROTATE  key {SECRETS['aws-access-key']}", "fix", "human",
                        objective_id="h-1"))                                       # duplicate input, more trusted
    memory.add(Verified("classify", LABELS, "judged only", None, "human", objective_id="h-2", local_answer="fix"))
    out = tmp_path / "train.jsonl"
    summary = export(memory, swarm.config, out, "chat-jsonl")
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert (summary.read, summary.written, summary.duplicates, summary.no_answer) == (3, 1, 1, 1)
    (line,) = lines
    user, answer = line["messages"][1]["content"], line["messages"][2]["content"]
    assert answer == "fix" and "[REDACTED:aws-access-key]" in user and SECRETS["aws-access-key"] not in out.read_text()
    assert "gate alone" not in out.read_text()
    assert summary.secrets == {"aws-access-key": 1}
    alpaca = export(memory, swarm.config, tmp_path / "a.jsonl", "alpaca", min_value=0.5)
    assert alpaca.below_value == 2 and alpaca.written == 0          # values are 0 until consolidated


def test_an_unknown_format_is_bad_input(memory, tmp_path):
    with pytest.raises(BadInput, match="expected one of chat-jsonl, alpaca"):
        export(memory, make_config(), tmp_path / "x", "csv")
