"""The data directory's disk fills up: SQLite writes fail, nothing is lost.

The data directory is a 16 MiB tmpfs (mounted by the test: needs root and
``mount``; skipped with the reason otherwise).  With the disk full, the
daemon cannot write admitted objectives to its store: it logs each failed
attempt as an error naming the cause, acknowledges nothing (the objectives
stay pending in Redis, not queued) and retries with its backoff.  Once space
is freed, every objective is admitted, run and persisted exactly once.  The
daemon log lives outside the full disk, as an operator would keep it.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from swarmd import constants as K
from swarmd import queue as Q
from tests.daemon.helpers import wait_final
from tests.faults.helpers import Swarmd, echo_config, finished_counts
from tests.wait import LONG_S, wait_until


@pytest.fixture
def small_disk(tmp_path):
    """``tmp_path/data`` as a 16 MiB tmpfs, unmounted afterwards."""
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the data directory needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(data)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def fill(path) -> int:
    """Write zeros to ``path`` until the disk is full; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as fh:
        chunk = b"\0" * (1 << 20)
        while True:
            try:
                written += fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 16] or b"\0"


def test_disk_full_objectives_stay_in_redis_are_retried_and_none_is_lost(tmp_path, small_disk, redis_url, redis_conn):
    log = tmp_path / "daemon.log"
    config = echo_config(tmp_path, log=("path: daemon_hybrid.log", f"path: {log}"))
    daemon = Swarmd(tmp_path, config, workers=1, redis_url=redis_url, data=small_disk)
    try:
        daemon.start()
        fill(small_disk / "filler")
        big = "x" * 16000                                  # more than the store's WAL can take in place
        batch = [{"id": f"full-{i}", "action": "classify", "input": f"{i} {big}", "labels": "feat,fix"}
                 for i in range(100)]
        daemon.submit(batch)
        wait_until(lambda: "retrying in 2.0s" in log.read_text(), LONG_S,
                   lambda: f"three failed admissions; log: {log.read_text()[-1500:]}", interval=0.2)
        text = log.read_text()
        assert f"(the store {small_disk / 'memory.db'}) failed (OperationalError: database or disk is full); " \
               "nothing is acknowledged" in text
        assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == len(batch)  # held in Redis
        assert all(redis_conn.llen(f"rq:queue:{q}") == 0 for q in Q.QUEUES)                      # none dispatched

        (small_disk / "filler").unlink()
        records = wait_final(small_disk / "memory.db", [r["id"] for r in batch])
        assert {r["state"] for r in records.values()} == {"done"}
        wait_until(lambda: len(finished_counts(redis_conn)) == len(batch), LONG_S, "every finished event")
        assert set(finished_counts(redis_conn).values()) == {1}
        assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
        assert "reading and handling the streams works again" in log.read_text()
    finally:
        daemon.close()
