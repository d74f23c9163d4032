"""``swarmctl status`` shows each tier's health (issue 23): reachable (the daemon's probe),
API key present, model loaded (an in-process model built by a running worker, else "on
first use"), cooling down until when (as a running worker reports it); and warns when
workers x n_threads exceeds the cores.  A real daemon and worker on a real redis-server;
LOCAL_FAST echo (in-process, no model file), Ollama on a closed loopback port, no API key."""

from __future__ import annotations

import json
import time

from swarmd.cli import swarmctl
from swarmd.daemon.health import health_warnings
from swarmd.queue import worker_tier_states
from tests.daemon.helpers import shipped_config, swarmctl_run, wait_final
from tests.wait import LONG_S, wait_until


def _status(monkeypatch, capsys, redis_url, config, *argv):
    return swarmctl_run(monkeypatch, capsys, redis_url, config, "status", *argv)


def test_status_shows_tier_health(echo_swarmd, tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    config = echo_swarmd(workers=1)
    wait_until(lambda: worker_tier_states(redis_conn), LONG_S, "a worker's tier state")
    code, got = _status(monkeypatch, capsys, redis_url, config, "--json")
    tiers = {t["tier"]: t for t in json.loads(got.out)["tiers"]}
    [worker] = worker_tier_states(redis_conn)
    fast, local, api = tiers["LOCAL_FAST"], tiers["LOCAL_QUALITY"], tiers["API_FALLBACK"]
    assert (fast["up"], fast["model_loaded"], fast["loaded_in"], fast["cooling_down"]) == (True, "loaded",
                                                                                           [worker], None)
    assert (local["up"], local["reachable"], local["key_present"]) == (False, False, None)
    assert "127.0.0.1:9" in local["problem"] and local["cooling_down"] is None    # not asked yet
    assert (api["up"], api["key_present"], api["problem"]) == (False, False, "no ANTHROPIC_API_KEY configured")

    # an objective that escalates past LOCAL_FAST: the worker cools both down and says so
    swarmctl.main(["--config", str(config), "submit", "--action", "tag", "--labels", "feat,fix", "--input",
                   "names no tag", "--id", "t1"])
    wait_final(tmp_path / "data" / "memory.db", ["t1"])
    wait_until(lambda: all(worker_tier_states(redis_conn)[worker]["cooling"].get(t["key"])
                           for t in (local, api)), LONG_S, "the worker's cool-downs")
    code, got = _status(monkeypatch, capsys, redis_url, config, "--json")
    data = json.loads(got.out)
    tiers = {t["tier"]: t for t in data["tiers"]}
    for tier in ("LOCAL_QUALITY", "API_FALLBACK"):
        cooling = tiers[tier]["cooling_down"]
        assert cooling["workers"] == [worker] and time.time() < cooling["until"] <= time.time() + 60
    assert "127.0.0.1:9" in tiers["LOCAL_QUALITY"]["cooling_down"]["reason"]
    assert not any("oversubscribed" in w for w in data["warnings"])   # 1 worker x 1 thread (no llama_cpp)

    code, got = _status(monkeypatch, capsys, redis_url, config)
    assert code == 0 and "tier health" in got.out and "loaded" in got.out and "until" in got.out


def test_health_warnings_name_oversubscription_and_no_worker():
    config = shipped_config()
    threads = config.tiers["LOCAL_FAST"][0].n_threads          # the embedded model's, 2 in the shipped config
    assert health_warnings(config, 1, cores=threads) == []
    [warning] = health_warnings(config, 3, cores=threads)
    assert warning.startswith(f"3 workers x n_threads {threads} = {3 * threads} threads on {threads} cores: "
                              "oversubscribed")
    assert health_warnings(config, 0)[0].startswith("no worker is running")
