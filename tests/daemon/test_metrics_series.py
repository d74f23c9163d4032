"""The daemon's new Prometheus series (issue 23), scraped from its real ``/metrics``:
governor decisions by decision and rule, workers up, tiers up, and the quality gate's
false-accept bound per group.  A real daemon and worker on a real redis-server; LOCAL_FAST
echo, Ollama on a closed loopback port, no API key.  The governor's decisions arrive as a
worker sends them: audit rows of the real governor inside an event on the event stream."""

from __future__ import annotations

import signal
import socket
import urllib.request

from swarmd import queue as Q
from swarmd.governor import AuditBuffer, Governor
from swarmd.governor.execute import run_tool
from swarmd.governor.policy import load_policy
from swarmd.memory.records import Memory
from swarmd.memory.gate import GateBook
from swarmd.memory.stats import gate_stats
from tests.daemon.helpers import ROOT, start_daemon, swarmctl_run, wait_final, write_config
from tests.wait import LONG_S, wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_new_series_on_the_metrics_endpoint(tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    port = _free_port()
    config = write_config(tmp_path, fast_provider="echo")
    text = config.read_text()
    assert "metrics:\n  port: null\n  refresh_s: 5\n" in text
    config.write_text(text.replace("metrics:\n  port: null\n  refresh_s: 5\n",
                                   f"metrics:\n  port: {port}\n  refresh_s: 0.2\n"))
    daemon = start_daemon(tmp_path, redis_url, config, workers=1)
    data = tmp_path / "data"
    try:
        # two decisions of the real governor, reported the way a worker reports an agent's
        audit = AuditBuffer()
        gov = Governor(load_policy(ROOT / "src" / "swarmd" / "policy.yaml"), audit=audit)
        rules = [run_tool(gov, "shell", {"command": "rm -rf /"}, str(tmp_path), objective_id="g1").decision.rule
                 for _ in range(2)]
        assert rules[0] == rules[1]
        Q.emit(redis_conn, Q.Failed("g1", reason="test", audit=audit.drain()))

        code, _ = swarmctl_run(monkeypatch, capsys, redis_url, config, "submit", "--action", "classify", "--labels",
                               "feat,fix", "--input", "add a flag", "--id", "c1")
        assert code == 0
        wait_final(data / "memory.db", ["c1"])
        code, got = swarmctl_run(monkeypatch, capsys, redis_url, config, "--data-dir", str(data), "feedback", "c1",
                                 "--answer", "feat")
        assert code == 0, got
        memory = Memory(data / "memory.db")
        try:            # the bound, computed here from the store as `swarmctl memory stats` does
            [row] = gate_stats(memory, {k: v[1] for k, v in GateBook(memory).active().items()})
        finally:
            memory.close()

        expected = [
            f'swarmd_governor_decisions_total{{decision="deny",rule="{rules[0]}"}} 2.0',
            "swarmd_workers_up 1.0",
            'swarmd_tier_up{model="gemma-3-270m-q8_0",provider="echo",tier="LOCAL_FAST"} 1.0',
            'swarmd_tier_up{model="llama3.1:8b",provider="ollama",tier="LOCAL_QUALITY"} 0.0',
            'swarmd_tier_up{model="claude-sonnet-5-5",provider="anthropic",tier="API_FALLBACK"} 0.0',
            f'swarmd_gate_false_accept_upper{{action="{row.action}",labels="{row.labels}",model="{row.model}",'
            f'prompt="{row.prompt}"}} {row.false_accept_upper!r}',
        ]
        body = ""

        def scraped() -> bool:
            nonlocal body
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            return all(line in body.splitlines() for line in expected)
        wait_until(scraped, LONG_S, lambda: "the series " + "; ".join(
            line for line in expected if line not in body.splitlines()) + " in:\n" + body[-3000:])
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
