"""The daemon reads and acknowledges each stream under its own consumer group,
wakes for either stream, and leaves the process environment alone.  Real
Redis, in-process :class:`swarmd.daemon.service.Daemon`."""

from __future__ import annotations

import json
import os
import threading
import time

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.config import load_config
from swarmd.daemon.service import Daemon
from tests.daemon.helpers import write_config
from tests.wait import LONG_S, wait_until


def _event(redis_conn, oid: str, kind: str = "started") -> bytes:
    return redis_conn.xadd(Q.EVENT_STREAM, {"kind": kind, "id": oid, "payload": json.dumps({"worker": "w", "ts": 1.0})})


def _groups(redis_conn, stream: str) -> dict[str, dict]:
    return {g["name"].decode(): g for g in redis_conn.xinfo_groups(stream)}


def test_daemon_leaves_the_environment_unchanged(tmp_path, redis_conn):
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    before = dict(os.environ)
    d = Daemon(config, tmp_path / "elsewhere", redis_conn)
    d.store.close()
    assert dict(os.environ) == before
    assert (tmp_path / "elsewhere" / "memory.db").exists()     # the data dir it was given is used


def test_event_stream_is_read_and_acknowledged_under_its_own_group(daemon, redis_conn):
    assert Q.EVENT_GROUP != K.OBJECTIVE_GROUP
    event_id = _event(redis_conn, "g-1")
    daemon.handle(daemon.read_streams(block_ms=100))
    groups = _groups(redis_conn, Q.EVENT_STREAM)
    assert set(groups) == {Q.EVENT_GROUP}                      # no other group reads the event stream
    assert groups[Q.EVENT_GROUP]["last-delivered-id"] == event_id
    assert groups[Q.EVENT_GROUP]["pending"] == 0               # acknowledged under the group that read it
    assert set(_groups(redis_conn, K.OBJECTIVE_STREAM)) == {K.OBJECTIVE_GROUP}


def test_an_event_wakes_a_daemon_waiting_on_empty_streams(daemon, redis_conn):
    threading.Timer(0.3, _event, (redis_conn, "wake-1")).start()
    start = time.monotonic()
    batches = daemon.read_streams(block_ms=600_000)
    waited = time.monotonic() - start
    ids = [fields[b"id"] for _stream, entries in batches for _eid, fields in entries]
    assert ids == [b"wake-1"]
    assert waited < LONG_S                                     # woken by the entry, not by the 600 s timeout


def test_a_burst_of_events_is_persisted_and_logged_in_few_batches(tmp_path, redis_conn, log_lines):
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    config = config.model_copy(update={"daemon": config.daemon.model_copy(update={"coalesce_ms": 100.0})})
    d = Daemon(config, tmp_path / "data", redis_conn)
    runner = threading.Thread(target=d.run, daemon=True)
    runner.start()
    try:
        for i in range(40):                  # one event every ~2 ms, as a busy worker sends them
            _event(redis_conn, f"burst-{i}")
            time.sleep(0.002)

        def all_acknowledged():
            group = _groups(redis_conn, Q.EVENT_STREAM)[Q.EVENT_GROUP]
            return not group["pending"] and \
                group["last-delivered-id"] == redis_conn.xinfo_stream(Q.EVENT_STREAM)["last-generated-id"]
        wait_until(all_acknowledged, LONG_S, "events all acknowledged")
    finally:
        d.stop()
        runner.join(30)
        d.close()
    batches = [line for line in log_lines if "running worker=w" in line]
    mentioned = [f"burst-{i}" for i in range(40) for line in batches if f"objective burst-{i} running" in line]
    assert sorted(mentioned) == sorted(f"burst-{i}" for i in range(40))      # each once
    assert len(batches) <= 10, f"{len(batches)} batches for 40 events"      # one or two per read without coalescing
