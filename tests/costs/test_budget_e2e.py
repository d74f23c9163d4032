"""A real ``swarmd --workers 2`` (daemon + two RQ worker processes) sharing one
daily cap in Redis: paid calls stop at the cap, free calls go on, the rest end
``unresolved: budget``; the daemon serves the call metrics it persisted."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request

import yaml

from swarmd.cli import main as swarmctl
from swarmd.store.objectives import Store
from tests.daemon.helpers import ROOT, start_daemon, wait_final, write_jsonl

CAP = 0.02


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_share_the_daily_cap(tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    port = _free_port()
    data = yaml.safe_load((ROOT / "llm_config.yaml").read_text())
    common = {"context_window": 100000, "timeout_s": 5}
    data["tiers"] = {
        "LOCAL_FAST": [{"provider": "echo", "model": "echo-free", "price_per_mtok_in": 0, "price_per_mtok_out": 0,
                        **common}],
        "LOCAL_QUALITY": [{"provider": "ollama", "model": "llama3.1:8b", "hosts": ["http://127.0.0.1:9"],
                           "price_per_mtok_in": 0, "price_per_mtok_out": 0, **common}],
        # An instant "API" model with a price: echo answers with the prompt's body.
        "API_FALLBACK": [{"provider": "echo", "model": "echo-paid", "price_per_mtok_in": 2.0,
                          "price_per_mtok_out": 10.0, "max_output_tokens": 400, **common}],
    }
    data["budgets"] = {"daily_usd": CAP, "monthly_usd": 100.0}
    data["metrics"] = {"port": port, "refresh_s": 0.5}
    data["daemon"]["heartbeat_s"] = 0.5
    config = tmp_path / "llm_config.yaml"
    config.write_text(yaml.safe_dump(data))
    question = " ".join(["why is the sky blue at noon but red at dusk"] * 20)      # ~200 words
    objectives = [{"id": f"r{i}", "action": "reason", "input": question} for i in range(20)]
    objectives += [{"id": f"c{i}", "action": "classify", "input": "fix crash", "labels": ["fix", "feat"]}
                   for i in range(10)]
    proc = start_daemon(tmp_path, redis_url, config, workers=2)
    try:
        monkeypatch.setenv("REDIS_URL", redis_url)
        assert swarmctl(["--config", str(config), "--data-dir", str(tmp_path / "data"), "submit", "--file",
                         str(write_jsonl(tmp_path / "o.jsonl", objectives))]) == 0
        records = wait_final(tmp_path / "data" / "memory.db", [o["id"] for o in objectives], timeout_s=120)
        time.sleep(1.5)                                    # a metrics refresh after the last event
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    reasons = [records[f"r{i}"] for i in range(20)]
    done = [r for r in reasons if r["state"] == "done"]
    blocked = [r for r in reasons if r["state"] == "unresolved" and r["reason"] == "budget"]
    assert done and blocked and len(done) + len(blocked) == 20
    assert all(records[f"c{i}"]["state"] == "done" for i in range(10))      # free calls never blocked
    store = Store(tmp_path / "data" / "memory.db")
    spent, by_tier = store.spend_since(0)
    store.close()
    assert 0 < spent <= CAP                                                # two workers, one cap
    assert by_tier["API_FALLBACK"]["calls"] == len(done)
    assert 'swarmd_llm_calls_total{action="reason",model="echo-paid",outcome="accepted",tier="API_FALLBACK"}' \
        f" {float(len(done))}" in body
    assert 'swarmd_budget_cap_usd{period="daily"} 0.02' in body
