"""Faults injected into a real `swarmd --workers 1` that runs its own redis-server.

* redis-server SIGKILLed: the daemon notices, stops with exit code 3 (systemd's
  ``Restart=on-failure`` then restarts it), and the restarted daemon starts
  Redis again from its append-only file: objectives acknowledged more than a
  second before the kill (``appendfsync everysec``) are all there, and new ones
  run.
* Entries written straight into the streams that are not objectives / events:
  skipped with a log line and acknowledged; the objectives around them run.

Echo provider; no REDIS_URL (the daemon's own Redis on its unix socket).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from swarmd import constants as K
from swarmd import queue as Q
from tests.daemon.helpers import daemon_env, wait_final, write_config
from tests.wait import LONG_S, wait_until


class OwnRedisDaemon:
    """`swarmd --workers 1` without a Redis URL, restartable, and a client of its Redis."""

    def __init__(self, tmp: Path):
        self.tmp, self.data = tmp, tmp / "data"
        self.config = write_config(tmp, fast_provider="echo")
        self.proc: subprocess.Popen | None = None

    def start(self) -> redis.Redis:
        env = daemon_env("")
        env.pop("REDIS_URL")
        url_file = self.data / "redis.url"
        url_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", "1", "--data-dir", str(self.data),
                                      "--config", str(self.config)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / "swarmd.stderr", "ab"))
        wait_until(lambda: url_file.exists() or self.proc.poll() is not None, LONG_S, "redis.url written")
        self.redis = redis.Redis.from_url(url_file.read_text().strip())
        wait_until(lambda: self.redis.exists(K.HEARTBEAT), LONG_S, "the daemon's heartbeat")
        return self.redis

    def submit(self, ids: list[str]) -> None:
        pipe = self.redis.pipeline()
        for oid in ids:
            pipe.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(
                {"id": oid, "action": "classify", "input": f"fix {oid}", "labels": ["feat", "fix"]})})
        pipe.execute()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=LONG_S)


@pytest.fixture
def swarm(tmp_path):
    s = OwnRedisDaemon(tmp_path)
    s.start()
    yield s
    s.stop()


def test_redis_killed_the_daemon_exits_and_restarts_from_the_append_only_file(swarm):
    first = [f"before-{i}" for i in range(20)]
    swarm.submit(first)
    wait_final(swarm.data / "memory.db", first)
    after = [f"after-{i}" for i in range(5)]
    swarm.redis.hset("swarmd:test:marker", "kept", "1")
    aof = swarm.data / "redis"                             # appendfsync everysec: wait until it is in the file
    wait_until(lambda: any(b"swarmd:test:marker" in f.read_bytes() for f in aof.rglob("*.aof")), LONG_S,
               "the marker in the append-only file")
    pid = int((swarm.data / "redis" / "redis-server.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    assert swarm.proc.wait(timeout=LONG_S) == 3               # noticed and stopped, for systemd to restart it
    log = (swarm.data / "daemon_hybrid.log").read_text()
    assert "own redis-server exited with code -9" in log
    client = swarm.start()                                # the restart: its Redis again, from the AOF
    assert client.hget("swarmd:test:marker", "kept") == b"1"
    swarm.submit(after)
    records = wait_final(swarm.data / "memory.db", first + after)
    assert all(r["state"] == "done" for r in records.values())
    finished = [f[b"id"].decode() for _i, f in client.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]
    assert sorted(finished) == sorted(first + after)     # each exactly once, across the crash


def test_malformed_stream_entries_are_skipped_logged_and_acknowledged(swarm):
    r = swarm.redis
    r.xadd(K.OBJECTIVE_STREAM, {"objective": "{not json"})
    r.xadd(K.OBJECTIVE_STREAM, {"something": "else"})
    swarm.submit(["good-1"])
    r.xadd(Q.EVENT_STREAM, {"kind": "finished", "id": "nobody"})          # no payload
    r.xadd(Q.EVENT_STREAM, {"kind": "finished", "id": "x", "payload": "{"})
    swarm.submit(["good-2"])
    records = wait_final(swarm.data / "memory.db", ["good-1", "good-2"])
    assert all(rec["state"] == "done" for rec in records.values())
    wait_until(lambda: r.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
               and r.xpending(Q.EVENT_STREAM, Q.EVENT_GROUP)["pending"] == 0, 10, "everything acknowledged")
    log = (swarm.data / "daemon_hybrid.log").read_text()
    assert log.count("rejected at admission") == 2
    assert log.count("is malformed and is dropped") == 2
    assert swarm.proc.poll() is None
