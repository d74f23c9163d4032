"""Cancel racing each state of an objective, on real parts (issue 23, section 6).

One real ``swarmd --workers 1`` (its HTTP API on a free loopback port) whose
LOCAL_FAST and API_FALLBACK are the loopback Anthropic fake of
tests/daemon/test_agent_governor.py, answering from one script per objective
marker.  The fake can run a hook when it receives a given request of a
marker (:meth:`HookedModel.on`), before it replies: the cancel then happens
while that objective's worker waits for the reply, i.e. while it is running,
with no timing guess.  For each state (queued, running agent, running label
objective, awaiting approval, just finished) the test checks that nothing
runs after the cancel (no further model request, tool action or workspace
change) and that nothing is lost (the calls already paid for are stored with
the objective, its state is ``cancelled``, an ended one keeps its result).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from swarmd import cli
from swarmd.daemon.store import Store
from tests.daemon.helpers import start_daemon, wait_final
from tests.daemon.test_agent_governor import PerObjectiveModel, _is_plan, _tail, done, loop_attempts, step, \
    write_agent_config
from tests.wait import LONG_S, wait_until


class HookedModel(PerObjectiveModel):
    """:class:`PerObjectiveModel` that calls ``hook()`` when it receives the
    ``n``-th agent-loop request (plan requests not counted; 1-based) whose
    prompt holds ``marker``, before answering it."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[tuple[str, int], callable] = {}
        self.counts: dict[str, int] = defaultdict(int)

    def on(self, marker: str, n: int, hook) -> None:
        with self._lock:
            self.hooks[(marker, n)] = hook

    def next_reply(self):
        tail = _tail(self._local.req.json["messages"][0]["content"])
        hook = None
        if not _is_plan(tail):
            with self._lock:
                for marker in self.scripts:
                    if marker in tail:
                        self.counts[marker] += 1
                        hook = self.hooks.pop((marker, self.counts[marker]), None)
        if hook is not None:      # outside the lock: the hook may wait on the daemon
            hook()
        return super().next_reply()


class Swarm:
    """The daemon, its API client and swarmctl against it."""

    def __init__(self, tmp: Path, redis_url: str, model: HookedModel):
        self.model = model
        self.config = write_agent_config(tmp, model.url)
        data = yaml.safe_load(self.config.read_text())
        for models in data["tiers"].values():
            for m in models:
                m["timeout_s"] = LONG_S          # a hook's cancel never makes a call time out
        data["api"]["listen"] = "127.0.0.1:0"    # tests run side by side
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        self.data = tmp / "data"
        self.proc = start_daemon(tmp, redis_url, self.config, workers=1, ANTHROPIC_API_KEY="sk-ant-test")
        url = wait_until(lambda: (self.data / "api.url").exists() and (self.data / "api.url").read_text().strip(),
                         LONG_S, "api.url written by the daemon")
        self.http = httpx.Client(base_url=url, timeout=LONG_S, headers={
            "Authorization": f"Bearer {(self.data / 'api.token').read_text().strip()}"})

    def submit(self, oid: str, text: str, action: str = "agent", **extra) -> None:
        r = self.http.post("/api/v1/objectives", json={"id": oid, "action": action, "input": text, **extra})
        assert r.status_code == 202, r.text

    def cancel(self, oid: str) -> httpx.Response:
        return self.http.post(f"/api/v1/objectives/{oid}/cancel")

    def record(self, oid: str) -> dict | None:
        store = Store(self.data / "memory.db")
        try:
            return store.get(oid)
        finally:
            store.close()

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        assert self.proc.wait(timeout=LONG_S) == 0


@pytest.fixture(scope="module")
def swarm(redis_server, tmp_path_factory):
    redis.Redis.from_url(redis_server).flushall()
    model, running = HookedModel().start(), None
    try:
        running = Swarm(tmp_path_factory.mktemp("cancel"), redis_server, model)
        yield running
    finally:
        if running is not None:
            running.stop()
        model.stop()


def _cancel_from_hook(swarm: Swarm, oid: str, replies: list) -> callable:
    """A hook that waits until the daemon knows ``oid`` is running (its ``started`` event
    persisted: the worker waits for this very reply meanwhile), then cancels it over HTTP."""
    def hook():
        wait_until(lambda: swarm.http.get(f"/api/v1/objectives/{oid}").json().get("state") == "running", LONG_S,
                   f"{oid} running in the API")
        replies.append(swarm.cancel(oid))
    return hook


def test_running_agent_stops_between_steps(swarm, capsys):
    """Cancelled while its 2nd step's model call is in flight: that step's action never runs (the
    governor never judged it), no 3rd step is asked for, the real workspace gets nothing (the change
    set is not applied; the copy is removed), and the two calls and step 1's audit row are stored
    with the cancelled objective."""
    m = "case-run-cancel"
    swarm.model.script(m, step("write_file", path="a.txt", content="first\n"),
                       step("write_file", path="b.txt", content="second\n"),
                       step("write_file", path="c.txt", content="third\n"), done("never"))
    replies: list[httpx.Response] = []
    swarm.model.on(m, 2, _cancel_from_hook(swarm, "ag-run", replies))
    swarm.submit("ag-run", f"{m}: write three files")
    rec = wait_until(lambda: (r := swarm.record("ag-run")) and r["state"] == "cancelled" and loop_attempts(r) and r,
                     LONG_S, "ag-run cancelled with its worker's report (its calls) stored")
    assert len(loop_attempts(rec)) == 2              # one report, with every call made
    assert [(r.status_code, r.json()["was"]) for r in replies] == [(200, "running")]
    assert rec["reason"] == "cancelled by api (was running)"
    assert len(swarm.model.prompts(m)) == 2                              # no step after the cancel
    capsys.readouterr()
    assert cli.main(["--config", str(swarm.config), "--data-dir", str(swarm.data), "audit", "--objective", "ag-run",
                     "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["tool"], r["args"].get("path"), r["decision"]) for r in rows] == [("write_file", "a.txt", "allow")]
    assert list((swarm.data / "workspaces" / "ag-run").iterdir()) == []  # nothing applied
    assert not (swarm.data / "agent-copies" / "ag-run").exists()
    assert all(a["outcome"] == "accepted" for a in loop_attempts(rec))
    assert swarm.cancel("ag-run").status_code == 409


def test_running_label_objective_stops_before_its_escalation(swarm):
    """Cancelled during its LOCAL_FAST call, whose answer the gate rejects: API_FALLBACK is never
    asked, and the LOCAL_FAST call is stored with the cancelled objective."""
    m = "case-label-cancel"
    swarm.model.script(m, "not one of the labels")
    replies: list[httpx.Response] = []
    swarm.model.on(m, 1, _cancel_from_hook(swarm, "lb-run", replies))
    swarm.submit("lb-run", f"{m}: fix crash on empty file", action="classify", labels=["feat", "fix"])
    rec = wait_until(lambda: (r := swarm.record("lb-run")) and r["state"] == "cancelled" and r["attempts"] and r,
                     LONG_S, "lb-run cancelled with its call stored")
    assert [(r.status_code, r.json()["was"]) for r in replies] == [(200, "running")]
    asked = [r.json["model"] for r in swarm.model.model_requests() if r.json and m in str(r.json["messages"])]
    assert asked == ["fake-fast"]                                       # no escalation after the cancel
    assert [(a["tier"], a["outcome"]) for a in rec["attempts"]] == [("LOCAL_FAST", "rejected")]


def test_queued_behind_a_running_one_never_runs(swarm):
    """While the only worker runs ``q-busy`` (held in its model call), ``q-wait`` is queued and
    cancelled; once ``q-busy`` ends, ``q-wait``'s job finds it cancelled: no model call, no attempt."""
    busy, waiting = "case-busy", "case-queued"
    swarm.model.script(busy, done("busy done"))
    swarm.model.script(waiting, done("never"))
    release, held = threading.Event(), threading.Event()

    def hold():
        held.set()
        assert release.wait(LONG_S)
    swarm.model.on(busy, 1, hold)
    swarm.submit("q-busy", f"{busy}: hold the worker")
    assert held.wait(LONG_S), "q-busy's model call did not arrive"
    swarm.submit("q-wait", f"{waiting}: should never run")
    wait_until(lambda: swarm.http.get("/api/v1/objectives/q-wait").json().get("state") == "queued", LONG_S,
               "q-wait queued")
    r = swarm.cancel("q-wait")
    release.set()
    assert r.status_code == 200 and r.json()["was"] == "queued"
    recs = wait_final(swarm.data / "memory.db", ["q-busy", "q-wait"])
    assert (recs["q-busy"]["state"], recs["q-busy"]["answer"]) == ("done", "busy done")
    assert (recs["q-wait"]["state"], recs["q-wait"]["attempts"]) == ("cancelled", [])
    assert swarm.model.prompts(waiting) == []


def test_awaiting_approval_cancelled_then_approve_is_refused(swarm, capsys):
    """Parked by the governor (``rm``): cancelled, it can no longer be approved (exit 2, HTTP 409),
    its action never runs, and the model is never asked again."""
    m = "case-park-cancel"
    swarm.model.script(m, step("write_file", path="old.txt", content="x"), step("shell", command="rm old.txt"),
                       done("removed"))
    swarm.submit("ag-park", f"{m}: remove old.txt")
    wait_until(lambda: (r := swarm.record("ag-park")) and r["state"] == "awaiting_approval", LONG_S, "ag-park parked")
    ws = swarm.data / "workspaces" / "ag-park"
    assert (ws / "old.txt").exists()                 # applied at the approval point
    r = swarm.cancel("ag-park")
    assert r.status_code == 200 and r.json()["was"] == "awaiting_approval"
    capsys.readouterr()
    argv = ["--config", str(swarm.config), "--data-dir", str(swarm.data)]
    assert cli.main([*argv, "approve", "ag-park"]) == 2
    assert swarm.http.post("/api/v1/approvals/ag-park/approve").status_code == 409
    rec = wait_until(lambda: (r := swarm.record("ag-park")) and r["state"] == "cancelled" and r, LONG_S,
                     "ag-park cancelled in the store")
    assert rec["reason"] == "cancelled by api (was awaiting_approval)"
    assert len(swarm.model.prompts(m)) == 2 and (ws / "old.txt").exists()
    assert len(loop_attempts(rec)) == 2                   # the calls made before the park are kept
    copy = swarm.data / "agent-copies" / "ag-park"        # no worker resumes it: its copy (a tmpfs) is gone
    assert not copy.exists() and copy.as_posix() not in Path("/proc/self/mounts").read_text()


def test_just_finished_keeps_its_result(swarm, capsys):
    """An objective that has just ended: cancel is 409 over HTTP and exit 2 in swarmctl; its state,
    answer and attempts stay."""
    m = "case-finished"
    swarm.model.script(m, done("finished first"))
    swarm.submit("ag-done", f"{m}: answer at once")
    before = wait_final(swarm.data / "memory.db", ["ag-done"])["ag-done"]
    r = swarm.cancel("ag-done")
    assert r.status_code == 409 and "has ended (done)" in r.json()["detail"]
    capsys.readouterr()
    assert cli.main(["--config", str(swarm.config), "--data-dir", str(swarm.data), "cancel", "ag-done"]) == 2
    assert "has ended (done)" in capsys.readouterr().err
    after = swarm.record("ag-done")
    assert (after["state"], after["answer"], after["attempts"]) == ("done", "finished first", before["attempts"])
