"""Malformed entries written straight into the streams (not through swarmctl).

Each is skipped with an error line naming the entry and why, acknowledged
(never read again), and counted in ``swarmd:stats`` (``swarmctl status
--json`` -> ``malformed``), except objective entries naming an id, which end
failed objectives (``objectives.failed``); the daemon keeps running and a valid objective
sent after them, and one in the same batch, finish normally.  Events the
store cannot apply (a finished event whose attempt lacks its fields) are
found by applying the batch one by one, so the good events beside them are
still persisted.
"""

from __future__ import annotations

import json

from swarmd import constants as K
from swarmd import queue as Q
from tests.daemon.helpers import wait_final
from tests.faults.helpers import Swarmd, echo_config, rows, swarmctl
from tests.wait import LONG_S, wait_until

BAD_OBJECTIVES = [
    {"text": "no objective field"},
    {"objective": b"\xff\xfe not utf-8"},
    {"objective": "{not json"},
    {"objective": json.dumps(["a", "list"])},
    {"objective": json.dumps({"id": "no-labels", "action": "classify", "input": "x"})},
    {"objective": json.dumps({"id": "bad-action", "action": "no_such_action", "input": "x"})},
]
BAD_EVENTS = [
    {"id": "ghost", "payload": "{}"},                                              # no kind
    {"kind": "exploded", "id": "ghost", "payload": "{}"},                          # unknown kind
    {"kind": "started", "id": "ghost", "payload": "{oops"},                        # payload not JSON
    {"kind": "started", "id": "ghost", "payload": "[1, 2]"},                       # payload not an object
    {"kind": "finished", "id": "ghost", "payload": json.dumps({"state": "melted"})},   # unknown state
    {"kind": "finished", "id": "ghost", "payload": json.dumps({"state": "done", "attempts": [{"tier": "X"}]})},
]


def test_malformed_stream_entries_are_skipped_acknowledged_and_counted(tmp_path, redis_url, redis_conn):
    config = echo_config(tmp_path)
    daemon = Swarmd(tmp_path, config, workers=1, redis_url=redis_url)
    try:
        daemon.start()
        pipe = redis_conn.pipeline()
        for fields in BAD_OBJECTIVES:
            pipe.xadd(K.OBJECTIVE_STREAM, fields)
        pipe.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(rows("good", 1)[0])})   # same batch: admitted
        for fields in BAD_EVENTS:
            pipe.xadd(Q.EVENT_STREAM, fields)
        pipe.execute()
        daemon.submit(rows("after", 3))
        ids = ["good-0", "after-0", "after-1", "after-2"]
        records = wait_final(tmp_path / "data" / "memory.db", ids)
        assert {r["state"] for r in records.values()} == {"done"}

        stats = wait_until(lambda: (s := redis_conn.hgetall(K.STATS)) and len(s) == 2 and s, LONG_S, "the counters")
        # the two entries naming an id are failed objectives, not malformed entries
        assert stats == {b"malformed_objectives": b"4", b"malformed_events": b"6"}
        assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
        assert redis_conn.xpending(Q.EVENT_STREAM, Q.EVENT_GROUP)["pending"] == 0
        log = daemon.log
        assert log.count("rejected at admission (skipped, acknowledged)") == 6
        assert log.count("is malformed and is dropped (acknowledged, counted)") == 6
        for why in ("KeyError: b'objective'", "JSONDecodeError", "expected a mapping", "no_such_action",
                    "field 'kind' is missing", "field 'kind' is 'exploded'", "field 'payload' is a JSON list",
                    "field 'state' is 'melted'", "KeyError: 'provider'"):
            assert why in log, why
        wait_until(lambda: json.loads(redis_conn.hget(K.HEARTBEAT, "counts") or "{}").get("failed") == 2, LONG_S,
                   "a heartbeat counting the rejected objectives")
        status = swarmctl("--config", str(config), "status", "--json", redis_url=redis_url)
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["malformed"] == {"objectives": 4, "events": 6}
        assert (data["objectives"]["failed"], data["objectives"]["done"]) == (2, 4)
        assert daemon.proc.poll() is None
    finally:
        daemon.close()
