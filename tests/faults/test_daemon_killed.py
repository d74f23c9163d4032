"""SIGKILL of the daemon mid-dispatch: nothing lost, nothing run twice.

The daemon dies (failpoint ``after_store``) after it wrote the first batch
of objectives to SQLite as ``queued`` but before it enqueued their RQ jobs
and acknowledged the stream entries: the one moment where the store says
queued and nothing else does.  A worker it supervised is left running
(orphaned, as without systemd).  The restarted daemon must enqueue each of
those objectives once (the store already knows them, RQ does not), admit
the rest, and every objective must finish exactly once.
"""

from __future__ import annotations

import signal
import sqlite3

from swarmd import constants as K
from swarmd import queue as Q
from tests.daemon.helpers import wait_final
from tests.faults.helpers import Swarmd, echo_config, finished_counts, rows
from tests.wait import LONG_S, wait_until


def test_daemon_sigkilled_between_store_and_enqueue_loses_and_repeats_nothing(tmp_path, redis_url, redis_conn):
    config = echo_config(tmp_path)
    batch = rows("mid", 300)              # more than one read (200 entries): killed in the first batch
    crashing = Swarmd(tmp_path, config, workers=1, redis_url=redis_url, SWARMD_FAILPOINT="after_store",
                      SWARMD_FAILPOINT_MARK=str(tmp_path / "killed"))
    daemon = Swarmd(tmp_path, config, workers=1, redis_url=redis_url)
    try:
        crashing.start()
        crashing.submit(batch)
        assert crashing.proc.wait(timeout=LONG_S) == -signal.SIGKILL
        db = tmp_path / "data" / "memory.db"
        queued = sqlite3.connect(db).execute("SELECT COUNT(*) FROM objectives WHERE state='queued'").fetchone()[0]
        assert queued == 200                                          # in the store ...
        assert all(redis_conn.llen(f"rq:queue:{q}") == 0 for q in Q.QUEUES)    # ... not in RQ
        assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 200   # ... not acked

        daemon.start()
        records = wait_final(db, [r["id"] for r in batch])
        assert {r["state"] for r in records.values()} == {"done"}
        wait_until(lambda: len(finished_counts(redis_conn)) == len(batch), LONG_S, "every finished event")
        counts = finished_counts(redis_conn)
        assert set(counts) == {r["id"] for r in batch} and set(counts.values()) == {1}   # each exactly once
        assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
        assert "reclaimed 200 objective(s) left pending" in daemon.log
    finally:
        daemon.close()
        crashing.close()
