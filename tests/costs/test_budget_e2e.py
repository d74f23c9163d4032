"""A real ``swarmd --workers 2`` (daemon + two RQ worker processes) sharing one
daily cap in Redis: paid calls stop at the cap, free calls go on, the rest end
``unresolved: budget``; the daemon serves the call metrics it persisted.

The paid tier is the loopback Anthropic fake, reached by the workers through
the official ``anthropic`` client; the free tier is ``provider: echo`` (no
model is loaded)."""

from __future__ import annotations

import signal
import socket
import sqlite3
import urllib.request

import pytest
import yaml

from swarmd.cli import main as swarmctl
from tests.daemon.helpers import ROOT, start_daemon, wait_final, write_jsonl
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic, api_key_of
from tests.wait import LONG_S, wait_until

CAP = 0.02
KEY = "sk-ant-e2e-test-key"
PAID = "claude-sonnet-5-5"
PRICE_IN, PRICE_OUT = 2.0, 10.0        # USD per million tokens, as written in the test's config below
TOKENS_IN, TOKENS_OUT = 300, 140       # what the fake reports for every paid call
# By hand: 300 x $2 / 1e6 + 140 x $10 / 1e6 = $0.0006 + $0.0014 = $0.002 per paid call, so the
# 20 paid objectives would cost $0.04 without the cap: twice the cap.
COST_PER_CALL = 0.002


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path, api_url: str, port: int):
    data = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())
    common = {"context_window": 100000, "timeout_s": 5}
    data["tiers"] = {
        "LOCAL_FAST": [{"provider": "echo", "model": "echo-free", "price_per_mtok_in": 0, "price_per_mtok_out": 0,
                        **common}],
        "LOCAL_QUALITY": [{"provider": "ollama", "model": "llama3.1:8b", "hosts": ["http://127.0.0.1:9"],
                           "price_per_mtok_in": 0, "price_per_mtok_out": 0, **common}],
        "API_FALLBACK": [{"provider": "anthropic", "model": PAID, "base_url": api_url,
                          "price_per_mtok_in": PRICE_IN, "price_per_mtok_out": PRICE_OUT,
                          "max_output_tokens": 400, "prior_confidence": 0.9, **common}],
    }
    data["budgets"] = {"daily_usd": CAP, "monthly_usd": 100.0}
    data["metrics"] = {"port": port, "refresh_s": 0.5}
    data["daemon"]["heartbeat_s"] = 0.5
    config = tmp_path / "llm_config.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def test_two_workers_share_the_daily_cap(tmp_path, redis_url, redis_conn, monkeypatch):
    port = _free_port()
    question = " ".join(["why is the sky blue at noon but red at dusk"] * 20)      # ~200 words
    objectives = [{"id": f"r{i}", "action": "reason", "input": question} for i in range(20)]
    objectives += [{"id": f"c{i}", "action": "classify", "input": "fix crash", "labels": ["fix", "feat"]}
                   for i in range(10)]
    with FakeAnthropic([Answer("Rayleigh scattering", tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT)],
                       api_key=KEY) as api:
        config = _config(tmp_path, api.url, port)
        proc = start_daemon(tmp_path, redis_url, config, workers=2, ANTHROPIC_API_KEY=KEY)
        try:
            monkeypatch.setenv("REDIS_URL", redis_url)
            assert swarmctl(["--config", str(config), "--data-dir", str(tmp_path / "data"), "submit", "--file",
                             str(write_jsonl(tmp_path / "o.jsonl", objectives))]) == 0
            records = wait_final(tmp_path / "data" / "memory.db", [o["id"] for o in objectives])
            done = [records[f"r{i}"] for i in range(20) if records[f"r{i}"]["state"] == "done"]
            calls_line = (f'swarmd_llm_calls_total{{action="reason",model="{PAID}",outcome="accepted",'
                          f'tier="API_FALLBACK"}} {float(len(done))}')
            bodies = [""]

            def metrics_refreshed() -> str | None:        # a refresh after the last persisted event
                bodies[0] = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                return bodies[0] if calls_line in bodies[0] else None

            body = wait_until(metrics_refreshed, LONG_S, lambda: f"{calls_line!r} in /metrics; last body: "
                              f"{[line for line in bodies[0].splitlines() if 'calls_total' in line]}", interval=0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=LONG_S)
    reasons = [records[f"r{i}"] for i in range(20)]
    blocked = [r for r in reasons if r["state"] == "unresolved" and r["reason"] == "budget"]
    assert done and blocked and len(done) + len(blocked) == 20
    assert all(r["answer"] == "Rayleigh scattering" for r in done)
    assert all(records[f"c{i}"]["state"] == "done" for i in range(10))      # free calls never blocked

    # every paid call went to the fake, through the official client, with the key; none for a blocked one
    paid_requests = api.model_requests("/v1/messages")
    assert len(paid_requests) == len(done)
    assert all(api_key_of(r) == KEY and r.headers.get("anthropic-version") and r.json["model"] == PAID
               for r in paid_requests)

    # the ledger: each paid call at the hand-computed price, and the two workers together under one cap
    db = sqlite3.connect(tmp_path / "data" / "memory.db")
    paid = db.execute("SELECT provider, model, tokens_in, tokens_out, cost_usd FROM ledger "
                      "WHERE tier = 'API_FALLBACK'").fetchall()
    db.close()
    assert len(paid) == len(done)
    for provider, model, tokens_in, tokens_out, cost in paid:
        assert (provider, model, tokens_in, tokens_out) == ("anthropic", PAID, TOKENS_IN, TOKENS_OUT)
        assert cost == pytest.approx(COST_PER_CALL, abs=1e-12)
    spent = sum(row[4] for row in paid)
    assert spent == pytest.approx(len(done) * COST_PER_CALL, abs=1e-12)
    assert CAP / 2 < spent <= CAP                          # two workers, one cap, held (uncapped: $0.04)
    assert 'swarmd_budget_cap_usd{period="daily"} 0.02' in body
