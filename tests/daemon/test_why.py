"""Why each answer is what it is (issue 23, "Why"): every attempt is stored with its
confidence and the gate's threshold, and every model the router passed over with its reason
(unreachable host:port, no API key, budget refused naming the cap, cooling down until T,
excluded by the strategy); ``swarmctl show`` prints both (text and ``--json``).

A real daemon with one worker on a real redis-server; LOCAL_FAST is the echo provider (no
model loaded), Ollama a closed loopback port (nothing listens on the discard port 9), no
API key.  The ``tag`` action's echo answer (the input itself) names no tag: confidence 0,
below the 0.70 gate, so every objective escalates through the whole chain."""

from __future__ import annotations

import json
import signal
import time

from tests.daemon.helpers import start_daemon, swarmctl_run, wait_final, write_config

CLOSED = "127.0.0.1:9"


def _run(monkeypatch, capsys, redis_url, config, *argv):
    code, got = swarmctl_run(monkeypatch, capsys, redis_url, config, *argv)
    return code, got.out


def _by_kind(record: dict) -> dict[str, dict]:
    return {s["reason_kind"]: s for s in record["skipped"]}


def test_attempts_and_skipped_tiers_are_stored_and_shown(tmp_path, redis_url, monkeypatch, capsys):
    config = write_config(tmp_path, fast_provider="echo")
    daemon = start_daemon(tmp_path, redis_url, config, workers=1)
    store = tmp_path / "data" / "memory.db"
    data = ["--data-dir", str(tmp_path / "data")]
    tag = ["--action", "tag", "--labels", "feat,fix", "--input", "nothing here names a tag"]
    try:
        # 1. an objective cap of $0: the API tier is refused by the budget before its key is looked at
        code, _ = _run(monkeypatch, capsys, redis_url, config, "submit", *tag, "--max-cost-usd", "0", "--id", "b1")
        assert code == 0
        b1 = wait_final(store, ["b1"])["b1"]
        assert (b1["state"], b1["reason"]) == ("unresolved", "budget")
        [fast] = b1["attempts"]
        assert (fast["tier"], fast["outcome"], fast["confidence"], fast["threshold"]) == ("LOCAL_FAST", "rejected",
                                                                                          0.0, 0.7)
        skips = _by_kind(b1)
        assert set(skips) == {"unreachable", "budget"}
        assert skips["unreachable"]["tier"] == "LOCAL_QUALITY" and CLOSED in skips["unreachable"]["detail"]
        assert (skips["budget"]["tier"], skips["budget"]["cap"]) == ("API_FALLBACK", "objective")
        assert skips["budget"]["detail"].startswith("objective cap $0.0000")

        # 2. no cap: the API tier is asked and has no key; Ollama is still cooling down
        before = time.time()
        _run(monkeypatch, capsys, redis_url, config, "submit", *tag, "--id", "u1")
        u1 = wait_final(store, ["u1"])["u1"]
        assert (u1["state"], u1["reason"]) == ("unresolved", "no tier reached confidence 0.70")
        skips = _by_kind(u1)
        assert set(skips) == {"cooling_down", "no_api_key"}
        cooling = skips["cooling_down"]
        assert cooling["tier"] == "LOCAL_QUALITY" and CLOSED in cooling["detail"]
        assert before < cooling["until"] <= time.time() + 60          # escalation.cooldown_s: 60 s
        assert skips["no_api_key"] == {"tier": "API_FALLBACK", "model": "claude-sonnet-5-5", "provider": "anthropic",
                                       "reason_kind": "no_api_key", "detail": "no ANTHROPIC_API_KEY configured"}

        # 3. local_only: the API tier is excluded by the strategy, not tried
        _run(monkeypatch, capsys, redis_url, config, "submit", *tag, "--strategy", "local_only", "--id", "s1")
        s1 = wait_final(store, ["s1"])["s1"]
        assert _by_kind(s1)["strategy"] == {"tier": "API_FALLBACK", "model": "claude-sonnet-5-5",
                                            "provider": "anthropic", "reason_kind": "strategy",
                                            "detail": "excluded by strategy 'local_only'"}

        # show: --json carries the stored lists; the text names each skipped tier and why
        code, out = _run(monkeypatch, capsys, redis_url, config, *data, "show", "u1", "--json")
        shown = json.loads(out)
        assert code == 1 and shown["skipped"] == u1["skipped"] and shown["attempts"] == u1["attempts"]
        code, out = _run(monkeypatch, capsys, redis_url, config, *data, "show", "b1")
        assert "skipped" in out and "budget (objective cap)" in out and "unreachable" in out
        assert "rejected (below gate)" in out and "0.700" in out
        code, out = _run(monkeypatch, capsys, redis_url, config, *data, "show", "u1")
        assert "cooling_down until" in out and "no_api_key" in out
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
