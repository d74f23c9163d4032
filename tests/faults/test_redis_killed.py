"""SIGKILL of swarmd's own redis-server mid-run, under load.

Its append-only file is fsynced once a second (``appendfsync everysec``),
but Redis write(2)s each command to the file before replying, so a killed
server loses nothing it acknowledged (see
:data:`swarmd.daemon.redis_server.DURABILITY` for what a power cut loses).
The daemon sees its server die and exits with code 3
(:meth:`swarmd.daemon.redis_server.RedisHandle.watch`), for systemd to start
it again (here: the test), with its Redis from the append-only file.  The kill
lands mid-run, with jobs queued and running: every objective ``swarmctl
submit`` acknowledged before the kill finishes exactly once.
tests/daemon/test_faults.py kills an idle one.
"""

from __future__ import annotations

import os
import signal
import sqlite3

from swarmd import constants as K
from tests.daemon.helpers import wait_final
from tests.faults.helpers import Swarmd, echo_config, finished_counts, rows
from tests.wait import LONG_S, wait_until


def test_own_redis_sigkilled_mid_run_daemon_exits_3_and_after_restart_nothing_is_lost(tmp_path):
    config = echo_config(tmp_path)
    daemon = Swarmd(tmp_path, config, workers=1)           # no Redis URL: swarmd runs its own
    try:
        daemon.start()
        before = rows("before", 300)
        daemon.submit(before)
        db = tmp_path / "data" / "memory.db"

        def done() -> int:
            return sqlite3.connect(db).execute("SELECT COUNT(*) FROM objectives WHERE state='done'").fetchone()[0]

        wait_until(lambda: done() >= 30, LONG_S, "30 objectives done before the kill")
        pid = int((tmp_path / "data" / "redis" / "redis-server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        assert daemon.proc.wait(timeout=LONG_S) == 3          # noticed: stops, for systemd to restart it
        assert "own redis-server exited with code -9" in daemon.log
        assert done() < len(before)                       # the kill landed mid-run

        daemon.start()                                    # what systemd's Restart=on-failure does
        after = rows("after", 20)
        daemon.submit(after)
        ids = [r["id"] for r in before + after]
        records = wait_final(db, ids)
        assert {r["state"] for r in records.values()} == {"done"}
        client = daemon.client()
        wait_until(lambda: len(finished_counts(client)) == len(ids), LONG_S, "every finished event")
        counts = finished_counts(client)
        assert set(counts) == set(ids) and set(counts.values()) == {1}     # none lost, none run twice
        assert client.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
    finally:
        daemon.close()
