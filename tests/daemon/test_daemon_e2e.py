"""End to end on a real redis-server and real swarmd processes.

* a batch through daemon + worker + the embedded model (Gemma 3 270M via
  llama.cpp; the only test here marked ``slow``) reaches final states, with
  results and ledger rows in SQLite and `status --json` counts matching;
  SIGTERM stops the daemon cleanly.
* The other tests do not load the embedded model: their LOCAL_FAST tier is
  ``provider: echo`` (instant, no inference; its model keeps the shipped
  name ``gemma-3-270m-q8_0`` as a label).  SIGKILL of the daemon after it
  read objectives but before dispatch, then a restart: every objective
  completes exactly once; SIGHUP reloads the config; a worker killed mid-job
  has its objective retried and completed once.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time

import pytest

from swarmd import cli
from swarmd import constants as K
from swarmd import queue as Q
from tests.daemon.helpers import ROOT, start_daemon, daemon_env, wait_final, write_config, write_jsonl
from tests.wait import LONG_S, wait_until

LABELS = "build,chore,ci,docs,feat,fix,perf,refactor,style,test"


def _commits(n: int) -> list[dict]:
    lines = (ROOT / "examples" / "commits-commitizen.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def _swarmctl(monkeypatch, capsys, redis_url, *argv) -> tuple[int, str]:
    for key, value in daemon_env(redis_url).items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_batch_through_daemon_worker_and_embedded_model(tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    config = write_config(tmp_path)
    daemon = start_daemon(tmp_path, redis_url, config, workers=1)
    try:
        rows = [{"id": f"e2e-{c['id']}", "action": "classify", "input": c["text"], "labels": LABELS}
                for c in _commits(8)]
        rows.append({"id": "e2e-yesno", "action": "yes_no", "input": "Is seven an even number?", "priority": "high"})
        batch = write_jsonl(tmp_path / "batch.jsonl", rows)
        code, out = _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "--data-dir",
                              str(tmp_path / "data"), "submit", "--file", str(batch))
        assert code == 0
        ids = out.split()
        assert ids == [r["id"] for r in rows]
        records = wait_final(tmp_path / "data" / "memory.db", ids)
        for oid, rec in records.items():
            assert rec["state"] in ("done", "unresolved")
            first = rec["attempts"][0]
            assert (first["tier"], first["provider"], first["model"]) == ("LOCAL_FAST", "llama_cpp",
                                                                         "gemma-3-270m-q8_0")
            assert rec["answer"] in LABELS.split(",") + ["yes", "no"]
        db = sqlite3.connect(tmp_path / "data" / "memory.db")
        per_objective = dict(db.execute("SELECT objective_id, COUNT(*) FROM ledger GROUP BY objective_id"))
        assert set(per_objective) == set(ids)
        assert all(n == len(records[i]["attempts"]) for i, n in per_objective.items())

        counts = dict(db.execute("SELECT state, COUNT(*) FROM objectives GROUP BY state"))
        seen: list[dict] = []

        def status_counts_match() -> dict | None:       # a heartbeat after the last persist carries them
            code, out = _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "status", "--json")
            assert code == 0
            seen[:] = [json.loads(out)]
            return seen[0] if {k: v for k, v in seen[0]["objectives"].items() if v} == counts else None

        status = wait_until(status_counts_match, LONG_S, lambda: f"status --json objectives {counts}, "
                            f"last: {seen and seen[0]['objectives']}", interval=0.25)
        assert status["daemon"]["alive"] and status["daemon"]["uptime_s"] > 0
        assert len(status["workers"]) == 1 and set(status["queues"]) == {"high", "default", "low"}

        code, out = _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "--data-dir",
                              str(tmp_path / "data"), "show", "e2e-yesno", "--json")
        shown = json.loads(out)
        assert shown["state"] in ("done", "unresolved") and shown["attempts"][0]["model"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=LONG_S) == 0
    assert not redis_conn.exists(K.HEARTBEAT)
    log = (tmp_path / "data" / "daemon_hybrid.log").read_text()
    # one log line per queue and read batch (d25c926); the high-priority objective goes to "high"
    assert re.search(r"objective\(s\) queued on high: (.*, )?e2e-yesno action=yes_no", log), log[-2000:]
    assert "swarmd stopped" in log


def test_sigkill_before_dispatch_then_restart_completes_each_once(tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    config = write_config(tmp_path, fast_provider="echo")
    crashing = start_daemon(tmp_path, redis_url, config, workers=0, SWARMD_FAILPOINT="after_read")
    rows = [{"id": f"crash-{i}", "action": "classify", "input": f"message {i}", "labels": "feat,fix"} for i in range(6)]
    code, _ = _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "submit", "--file",
                        str(write_jsonl(tmp_path / "b.jsonl", rows)))
    assert code == 0
    assert crashing.wait(timeout=LONG_S) == -signal.SIGKILL
    pending = redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)
    assert pending["pending"] == 6          # read, never acknowledged, nothing enqueued
    assert all(redis_conn.llen(f"rq:queue:{q}") == 0 for q in Q.QUEUES)

    daemon = start_daemon(tmp_path, redis_url, config, workers=1)
    try:
        records = wait_final(tmp_path / "data" / "memory.db", [r["id"] for r in rows])
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=LONG_S)
    assert all(r["state"] == "done" and r["answer"] == "feat" for r in records.values())
    finished = [f[b"id"].decode() for _id, f in redis_conn.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]
    assert sorted(finished) == sorted(r["id"] for r in rows)                          # each exactly once
    assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0


def test_sighup_reloads_config_and_restarts_supervised_workers(tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    """LOCAL_FAST is ``provider: echo`` (no model loaded); SIGHUP switches its model label."""
    config = write_config(tmp_path, fast_provider="echo")
    daemon = start_daemon(tmp_path, redis_url, config, workers=1)
    log = tmp_path / "data" / "daemon_hybrid.log"
    try:
        first = [{"id": "before-hup", "action": "classify", "input": "x", "labels": "feat,fix"}]
        assert _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "submit", "--file",
                         str(write_jsonl(tmp_path / "a.jsonl", first)))[0] == 0
        wait_final(tmp_path / "data" / "memory.db", ["before-hup"])
        text = config.read_text()
        config.write_text(text.replace("model: gemma-3-270m-q8_0\n", "model: echo-reloaded\n", 1)
                          .replace('daily_at: "23:55"', 'daily_at: "06:30"'))
        daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: log.read_text().count("worker 0 started") >= 2, LONG_S,
                   lambda: f"worker 0 restarted after SIGHUP; log: {log.read_text()[-2000:]}", interval=0.2)
        out = log.read_text()
        assert "config reloaded" in out and "daily cost report at 06:30" in out
        assert "stopped for the new config" in out and out.count("worker 0 started") == 2
        second = [{"id": "after-hup", "action": "classify", "input": "y", "labels": "feat,fix"}]
        assert _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "submit", "--file",
                         str(write_jsonl(tmp_path / "b.jsonl", second)))[0] == 0
        records = wait_final(tmp_path / "data" / "memory.db", ["after-hup"])
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=LONG_S)
    db = sqlite3.connect(tmp_path / "data" / "memory.db")
    models = dict(db.execute("SELECT objective_id, model FROM ledger WHERE objective_id IN ('before-hup','after-hup')"))
    assert models == {"before-hup": "gemma-3-270m-q8_0", "after-hup": "echo-reloaded"}   # the worker has the new config
    assert records["after-hup"]["state"] == "done"


def test_worker_killed_mid_job_the_objective_is_retried_and_completes_once(tmp_path, redis_url, redis_conn,
                                                                         monkeypatch, capsys):
    """LOCAL_FAST is ``provider: echo`` (no model loaded).  The shipped job timeout (600 s) and
    retry intervals ([5, 30] s): the supervisor sees its worker die and hands the job back to RQ
    at once, so the objective finishes seconds after the kill, not job_timeout_s + 60 s later."""
    config = write_config(tmp_path, fast_provider="echo")
    assert "job_timeout_s: 600" in config.read_text()
    mark = tmp_path / "killed"
    daemon = start_daemon(tmp_path, redis_url, config, workers=1, SWARMD_FAILPOINT="worker_mid_job",
                          SWARMD_FAILPOINT_MARK=str(mark))
    rows = [{"id": f"kill-{i}", "action": "classify", "input": f"message {i}", "labels": "feat,fix"} for i in range(3)]
    try:
        code, _ = _swarmctl(monkeypatch, capsys, redis_url, "--config", str(config), "submit", "--file",
                            str(write_jsonl(tmp_path / "k.jsonl", rows)))
        assert code == 0
        records = wait_final(tmp_path / "data" / "memory.db", [r["id"] for r in rows])
        recovered_s = time.time() - mark.stat().st_mtime          # kill -> every objective final
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=LONG_S)
    print(f"\nworker SIGKILLed mid-job: all objectives final {recovered_s:.1f} s after the kill")
    assert recovered_s <= LONG_S        # seconds after the kill, not job_timeout_s + 60 = 660 s
    killed = mark.read_text()                                   # the objective whose worker died under it
    assert killed in records and all(r["state"] == "done" for r in records.values())
    log = (tmp_path / "data" / "daemon_hybrid.log").read_text()
    assert "exited with -9" in log                              # the supervisor saw the crash and restarted it
    # the killed job and the jobs claimed with it in its batch (swarmd.workers.batching): all queued at once
    assert f"died running job(s) {', '.join(r['id'] for r in rows)}; handed back to RQ now" in log
    finished = [f[b"id"].decode() for _i, f in redis_conn.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]
    assert sorted(finished) == sorted(r["id"] for r in rows)    # each exactly once, the killed one included
