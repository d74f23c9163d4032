"""A worker that dies mid-job on a host the daemon does not supervise (another
machine, or `swarmd-worker@N`) is found by its RQ heartbeat lapsing, not by the
job timeout: its job is retried by another worker seconds later, exactly once.

Real redis-server, `swarmd` with no workers of its own, and two `swarmd worker`
processes: the first SIGKILLs itself as the job starts (failpoint
``worker_mid_job``); the second is started after that.  The shipped job
timeout (600 s) and retry intervals ([5, 30] s); echo provider.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time


from swarmd import cli
from swarmd import queue as Q
from swarmd.workers.context import HEARTBEAT_TTL_S
from tests.daemon.helpers import daemon_env, start_daemon, wait_final, write_config
from tests.wait import LONG_S


def _worker(tmp_path, redis_url, config, name, **env):
    return subprocess.Popen([sys.executable, "-m", "swarmd", "worker", "--name", name, "--config", str(config),
                             "--data-dir", str(tmp_path / "data")], env=daemon_env(redis_url, **env),
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "ab"))


def test_unsupervised_worker_killed_mid_job_is_found_by_its_heartbeat(tmp_path, redis_url, redis_conn,
                                                                      monkeypatch, capsys):
    config = write_config(tmp_path, fast_provider="echo")
    assert "job_timeout_s: 600" in config.read_text()
    mark = tmp_path / "killed"
    daemon = start_daemon(tmp_path, redis_url, config, workers=0)
    doomed = _worker(tmp_path, redis_url, config, "remote-a", SWARMD_FAILPOINT="worker_mid_job",
                     SWARMD_FAILPOINT_MARK=str(mark))
    rescuer = None
    try:
        for key, value in daemon_env(redis_url).items():
            monkeypatch.setenv(key, value)
        assert cli.main(["--config", str(config), "submit", "--id", "remote-1", "--action", "classify",
                         "--labels", "feat,fix", "--input", "fix crash"]) == 0
        capsys.readouterr()
        assert doomed.wait(timeout=LONG_S) == -signal.SIGKILL
        assert mark.read_text() == "remote-1"
        rescuer = _worker(tmp_path, redis_url, config, "remote-b")
        record = wait_final(tmp_path / "data" / "memory.db", ["remote-1"])["remote-1"]
        recovered_s = time.time() - mark.stat().st_mtime
    finally:
        for proc in (rescuer, doomed, daemon):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=LONG_S)
    print(f"\nunsupervised worker SIGKILLed mid-job: objective final {recovered_s:.1f} s after the kill "
          f"(heartbeat TTL {HEARTBEAT_TTL_S} s)")
    assert record["state"] == "done"
    assert recovered_s <= LONG_S        # seconds after the kill, not job_timeout_s + 60 = 660 s
    finished = [f[b"id"] for _i, f in redis_conn.xrange(Q.EVENT_STREAM) if f[b"kind"] == b"finished"]
    assert finished == [b"remote-1"]                             # exactly once
