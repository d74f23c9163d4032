"""The HTTP API of a real swarmd over real HTTP (httpx): every endpoint, auth, bad input, cancel, SSE, secrets."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading

import httpx
import pytest
import yaml

from swarmd import cli
from swarmd.agent import approvals
from swarmd.api.auth import ensure_token
from swarmd.daemon.health import NO_WORKERS
from swarmd.config import load_config
from swarmd.daemon.control import retry_id
from swarmd.governor.policy import Decision
from tests.wait import wait_until

LABELED = {"action": "classify", "labels": ["feat", "fix"]}


def _final(client: httpx.Client, oid: str, timeout: float = 120) -> dict:
    def ended():
        r = client.get(f"/api/v1/objectives/{oid}")
        return r.status_code == 200 and r.json()["state"] in ("done", "failed", "unresolved", "cancelled") and r.json()
    return wait_until(ended, timeout, f"objective {oid} final in the API")


def test_auth_refused_without_the_right_token(swarm, tmp_path):
    token_file = swarm.data / "api.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    other = ensure_token(tmp_path / "other-data")
    assert other != swarm.token
    paths = ["/api/v1/status", "/api/v1/objectives", "/api/v1/openapi.json", "/metrics", "/api/v1/events"]
    for token in (None, "wrong", other):
        with swarm.client(token) as c:
            for path in paths:
                r = c.get(path)
                assert r.status_code == 401, (token, path, r.status_code)
                assert swarm.token not in r.text
            assert c.post("/api/v1/objectives", json={"input": "x", **LABELED}).status_code == 401
    with swarm.client("own") as c:                        # the right token over TCP ...
        assert c.get("/api/v1/status").status_code == 200
    uds = httpx.HTTPTransport(uds=str(swarm.data / "api.sock"))
    with httpx.Client(transport=uds, base_url="http://swarmd", timeout=30,
                      headers={"Authorization": f"Bearer {swarm.token}"}) as c:      # ... and the unix socket
        assert c.get("/api/v1/status").status_code == 200
    assert stat.S_IMODE(os.stat(swarm.data / "api.sock").st_mode) == 0o600

    old = swarm.token                                      # rotation: the old token stops working at once
    assert cli.main(["--data-dir", str(swarm.data), "api", "token", "--rotate"]) == 0
    new = token_file.read_text().strip()
    assert new != old
    with swarm.client(old) as c:
        assert c.get("/api/v1/status").status_code == 401
    with swarm.client(new) as c:
        assert c.get("/api/v1/status").status_code == 200


def test_every_endpoint(swarm):
    with swarm.client() as c:
        r = c.post("/api/v1/objectives", json={"id": "one", "input": "fix crash", **LABELED})
        assert (r.status_code, r.json()) == (202, {"ids": ["one"]})
        r = c.post("/api/v1/objectives", json=[{"id": f"many{i}", "input": f"text {i}", **LABELED} for i in range(3)])
        assert (r.status_code, r.json()) == (202, {"ids": ["many0", "many1", "many2"]})
        records = {oid: _final(c, oid) for oid in ("one", "many0", "many1", "many2")}
        assert all(rec["state"] == "done" and rec["answer"] == "feat" and rec["attempts"] for rec in records.values())

        page1 = c.get("/api/v1/objectives", params={"state": "done", "limit": 3}).json()
        page2 = c.get("/api/v1/objectives", params={"state": "done", "limit": 3, "cursor": page1["next"]}).json()
        listed = [o["id"] for o in page1["objectives"] + page2["objectives"]]
        assert sorted(listed) == ["many0", "many1", "many2", "one"] and len(set(listed)) == 4
        assert page2["next"] is None and page1["next"]
        assert [o["id"] for o in c.get("/api/v1/objectives", params={"q": "CRASH"}).json()["objectives"]] == ["one"]
        assert c.get("/api/v1/objectives", params={"state": "cancelled"}).json() == {"objectives": [], "next": None}
        assert c.get("/api/v1/objectives", params={"action": "classify", "since": "1h"}).json()["objectives"]

        assert c.get("/api/v1/objectives/nosuch").status_code == 404
        r = c.post("/api/v1/objectives/one/cancel")
        assert r.status_code == 409 and "has ended (done)" in r.json()["detail"]
        assert c.post("/api/v1/objectives/one/retry").status_code == 409
        r = c.post("/api/v1/objectives/one/feedback", json={"verdict": "good", "note": "checked"})
        assert r.status_code == 200 and r.json()["records"] == 1

        status = wait_until(lambda: (s := c.get("/api/v1/status").json())["objectives"]["done"] >= 4 and s, 60,
                            "the heartbeat's counts to include the 4 done objectives")
        assert status["daemon"]["alive"] is True and len(status["workers"]) == 1 and status["warnings"] == []
        costs = c.get("/api/v1/costs", params={"since": "1h"})
        assert costs.status_code == 200 and costs.json()
        memory = c.get("/api/v1/memory").json()
        assert memory["records"] >= 1 and isinstance(memory["gates"], list)
        assert c.get("/api/v1/approvals").json() == {"approvals": []}
        assert c.get("/api/v1/traces").json() == {"traces": []}
        assert c.get("/api/v1/traces/nosuch").status_code == 404
        metrics = c.get("/metrics")
        assert metrics.status_code == 200 and 'swarmd_objectives{state="done"}' in metrics.text
        schema = c.get("/api/v1/openapi.json").json()
        assert {"/api/v1/objectives", "/api/v1/objectives/{objective_id}/cancel", "/api/v1/events",
                "/api/v1/approvals/{objective_id}/approve", "/metrics"} <= set(schema["paths"])


def test_bad_input_to_every_post(swarm):
    with swarm.client() as c:
        r = c.post("/api/v1/objectives", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not JSON" in r.json()["detail"]
        r = c.post("/api/v1/objectives", json=[{"input": "fine", **LABELED},
                                               {"input": "", "action": "nosuch"},
                                               {"input": "x", "action": "classify", "labels": ["a"], "bogus": 1}])
        assert r.status_code == 422
        problems = {(p["index"], p["field"]) for p in r.json()["detail"]}
        assert {(1, "action"), (1, "input"), (2, "labels"), (2, "bogus")} <= problems
        assert all(p["index"] != 0 for p in r.json()["detail"])
        assert c.post("/api/v1/objectives", json=[{"id": "d", "input": "a", **LABELED},
                                                  {"id": "d", "input": "b", **LABELED}]).status_code == 422
        assert c.post("/api/v1/objectives", json=[]).status_code == 422
        assert c.get("/api/v1/objectives/d").status_code == 404     # nothing of a refused batch was submitted
        assert c.get("/api/v1/objectives", params={"state": "nosuch"}).status_code == 422
        assert c.get("/api/v1/objectives", params={"cursor": "garbage"}).status_code == 422
        for action in ("cancel", "retry"):
            assert c.post(f"/api/v1/objectives/nosuch/{action}").status_code == 404
        assert c.post("/api/v1/objectives/nosuch/feedback", json={"verdict": "good"}).status_code == 404
        assert c.post("/api/v1/objectives/nosuch/feedback", content=b"[").status_code == 400
        r = c.post("/api/v1/objectives/nosuch/feedback", json={"verdict": "meh", "extra": 1})
        assert r.status_code == 422 and {p["field"] for p in r.json()["detail"]} == {"verdict", "extra"}
        assert c.post("/api/v1/objectives/nosuch/feedback", json={}).status_code == 422
        for verb in ("approve", "deny"):
            assert c.post(f"/api/v1/approvals/nosuch/{verb}").status_code == 404
        c.post("/api/v1/objectives", json={"id": "ok1", "input": "x", **LABELED})
        _final(c, "ok1")
        assert c.post("/api/v1/approvals/ok1/approve").status_code == 409   # known, not awaiting approval


def _sse_states(swarm, out: list, ready: threading.Event, until: callable) -> None:
    with swarm.client() as c, c.stream("GET", "/api/v1/events", timeout=None) as r:
        event = None
        for line in r.iter_lines():
            if line.startswith(": connected"):
                ready.set()
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "state":
                out.append(json.loads(line[6:]))
                if until(out):
                    return


def test_cancel_queued_never_runs_and_sse_delivers_it(idle_swarm):
    swarm = idle_swarm
    seen: list[dict] = []
    ready = threading.Event()
    listener = threading.Thread(target=_sse_states, args=(swarm, seen, ready, lambda s: any(
        e["id"] == "q1" and e["state"] == "cancelled" for e in s)), daemon=True)
    listener.start()
    assert ready.wait(60), "the event stream did not start"
    with swarm.client() as c:
        assert c.get("/api/v1/status").json()["warnings"] == [NO_WORKERS]      # and the daemon said so at start
        assert "swarmd starts no worker (--workers 0)" in (swarm.data.parent / "swarmd.stderr").read_text()
        assert c.post("/api/v1/objectives", json=[{"id": "q1", "input": "a", **LABELED},
                                                  {"id": "q2", "input": "b", **LABELED}]).status_code == 202
        wait_until(lambda: c.get("/api/v1/objectives/q1").json().get("state") == "queued", 60, "q1 queued")
        r = c.post("/api/v1/objectives/q1/cancel")
        assert r.status_code == 200 and r.json() == {"id": "q1", "was": "queued", "state": "cancelled",
                                                     "stopped_job": None}
        listener.join(60)
        assert not listener.is_alive(), f"no SSE 'cancelled' for q1; got {seen}"
        assert {"id": "q1", "state": "submitted", "kind": "submitted", "action": "classify"} in seen
        swarm.burst_worker()
        q1, q2 = _final(c, "q1"), _final(c, "q2")
        assert (q1["state"], q1["attempts"], q2["state"]) == ("cancelled", [], "done")
        assert c.post("/api/v1/objectives/q1/cancel").status_code == 409
        first, second = c.post("/api/v1/objectives/q1/retry"), c.post("/api/v1/objectives/q1/retry")
        assert first.status_code == second.status_code == 202
        assert first.json() == second.json() == {"id": retry_id("q1"), "retry_of": "q1"}


def test_approvals_listed_approved_and_denied(idle_swarm, redis_conn):
    swarm = idle_swarm
    config = load_config(swarm.config)
    ask = Decision("ask", "shell.network", "network access needs approval")
    for oid in ("p1", "p2"):
        pipe = redis_conn.pipeline()
        approvals.park(pipe, {"id": oid, "action": "agent", "input": "fetch it"}, 0, "run_shell",
                       {"command": "curl http://example.invalid"}, ask, {"workspace": f"/w/{oid}"})
        pipe.execute()
    with swarm.client() as c:
        rows = c.get("/api/v1/approvals").json()["approvals"]
        assert [(r["id"], r["tool"], r["rule"], r["workspace"]) for r in rows] == [
            ("p1", "run_shell", "shell.network", "/w/p1"), ("p2", "run_shell", "shell.network", "/w/p2")]
        assert c.post("/api/v1/approvals/p1/approve").json()["resolution"] == "approve"
        assert c.post("/api/v1/approvals/p2/deny").json()["resolution"] == "reject"
        assert c.get("/api/v1/approvals").json() == {"approvals": []}
        assert approvals.load(redis_conn, "p1")["resolution"]["by"] == "api"
        assert config.daemon.result_ttl_s > 0


def test_no_response_holds_a_secret(swarm):
    bodies = []
    with swarm.client() as c:
        c.post("/api/v1/objectives", json={"id": "s1", "input": "secret-free", **LABELED})
        _final(c, "s1")
        for path in ("/api/v1/status", "/api/v1/objectives", "/api/v1/objectives/s1", "/api/v1/approvals",
                     "/api/v1/costs", "/api/v1/memory", "/metrics", "/api/v1/openapi.json",
                     "/api/v1/objectives/nosuch", "/api/v1/costs?since=bogus"):
            r = c.get(path)
            bodies.append((path, r.status_code, r.text + json.dumps(dict(r.headers))))
        for path, body in (("/api/v1/objectives", b"{"), ("/api/v1/objectives", b'[{"action": 1}]'),
                           ("/api/v1/objectives/s1/cancel", b""), ("/api/v1/objectives/s1/retry", b""),
                           ("/api/v1/objectives/s1/feedback", b'{"verdict": "good"}')):
            r = c.post(path, content=body)
            bodies.append((path, r.status_code, r.text + json.dumps(dict(r.headers))))
    with swarm.client(None) as c:
        r = c.get("/api/v1/status")
        bodies.append(("unauthorised", r.status_code, r.text + json.dumps(dict(r.headers))))
    assert len(bodies) == 16 and all(code < 500 for _p, code, _b in bodies), [(p, c) for p, c, _b in bodies]
    for secret in swarm.secrets:
        assert len(secret) >= 16
        leaked = [path for path, _code, body in bodies if secret in body]
        assert not leaked, f"a secret appears in the responses of {leaked}"


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "10.1.2.3:0", "example.com:0"])
def test_remote_listen_refused_without_allow_remote(tmp_path, redis_url, listen):
    import subprocess
    import sys

    from tests.daemon.helpers import daemon_env, write_config
    config = write_config(tmp_path, fast_provider="echo")
    config.write_text(config.read_text().replace("  listen: 127.0.0.1:0\n", f"  listen: {listen}\n"))
    proc = subprocess.run([sys.executable, "-m", "swarmd", "--data-dir", str(tmp_path / "data"),
                           "--config", str(config)], env=daemon_env(redis_url), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "is not a loopback address" in proc.stderr and "allow_remote" in proc.stderr


def test_listen_address_in_use_leaves_the_api_on_the_unix_socket(tmp_path, redis_url):
    import socket

    from tests.daemon.helpers import start_daemon, write_config
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    config = write_config(tmp_path, fast_provider="echo")
    config.write_text(config.read_text().replace("  listen: 127.0.0.1:0\n", f"  listen: 127.0.0.1:{port}\n"))
    proc = start_daemon(tmp_path, redis_url, config, workers=0)
    try:
        data = tmp_path / "data"
        url = wait_until(lambda: (data / "api.url").exists() and (data / "api.url").read_text().strip(), 60,
                         "api.url")
        assert url.startswith("http+unix://") and "api.sock" in url
        assert f"cannot listen on api.listen 127.0.0.1:{port}" in (tmp_path / "swarmd.stderr").read_text()
        token = (data / "api.token").read_text().strip()
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(data / "api.sock")), base_url="http://swarmd",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            assert c.get("/api/v1/status").json()["daemon"]["alive"] is True
    finally:
        proc.terminate()
        proc.wait(120)
        taken.close()


def test_cancel_awaiting_approval_cannot_be_approved_after(idle_swarm, redis_conn):
    """An agent objective parked by the governor (its park record and the worker's ``finished`` event
    with state ``awaiting_approval``, as a worker writes them) is cancelled; approving it then is 409."""
    from swarmd import queue as Q
    swarm = idle_swarm
    ask = Decision("ask", "shell.network", "network access needs approval")
    with swarm.client() as c:
        assert c.post("/api/v1/objectives", json={"id": "ag1", "input": "fetch the notes", **LABELED}
                      ).status_code == 202
        wait_until(lambda: c.get("/api/v1/objectives/ag1").json().get("state") == "queued", 60, "ag1 queued")
        pipe = redis_conn.pipeline()
        approvals.park(pipe, {"id": "ag1", "action": "classify", "input": "fetch the notes"}, 0, "run_shell",
                       {"command": "curl http://example.invalid"}, ask, {"workspace": "/w/ag1"})
        Q.emit(pipe, Q.Finished(objective_id="ag1", state="awaiting_approval", result={}, attempts=[],
                                action="classify", worker="test"))
        pipe.execute()
        wait_until(lambda: c.get("/api/v1/objectives/ag1").json().get("state") == "awaiting_approval", 60,
                   "ag1 awaiting approval in the store")
        r = c.post("/api/v1/objectives/ag1/cancel")
        assert r.status_code == 200 and r.json()["was"] == "awaiting_approval"
        assert c.get("/api/v1/approvals").json() == {"approvals": []}
        assert c.post("/api/v1/approvals/ag1/approve").status_code == 409
        rec = wait_until(lambda: (o := c.get("/api/v1/objectives/ag1").json())["state"] == "cancelled" and o, 60,
                         "ag1 cancelled in the store")
        assert "cancelled by api (was awaiting_approval)" == rec["reason"]
        swarm.burst_worker()                      # its queued job (run 0) finds it cancelled
        assert c.get("/api/v1/objectives/ag1").json()["attempts"] == []


def test_the_api_serves_the_config_a_sighup_reloaded(swarm):
    """SIGHUP after editing the config: the daemon reloads it, and the API (status's caps, the
    overview's daily cap) answers with the new one, not the one swarmd started with."""
    before = yaml.safe_load(swarm.config.read_text())["budgets"]
    with swarm.client() as c:
        assert c.get("/api/v1/status").json()["budgets"] == {"daily_usd": before["daily_usd"],
                                                              "monthly_usd": before["monthly_usd"]}
        new_cap = before["daily_usd"] + 2.25
        data = yaml.safe_load(swarm.config.read_text())
        data["budgets"]["daily_usd"] = new_cap
        swarm.config.write_text(yaml.safe_dump(data, sort_keys=False))
        swarm.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: c.get("/api/v1/status").json()["budgets"]["daily_usd"] == new_cap, 60,
                   "the reloaded daily cap in GET /api/v1/status")
        assert f"of ${new_cap:.2f} daily cap" in c.get("/").text
        assert c.get("/api/v1/status").json()["daemon"]["alive"] is True
