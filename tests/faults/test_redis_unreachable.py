"""Redis unreachable for a while (a configured Redis, stopped and started again).

The daemon keeps running and retries with a backoff doubling from 0.5 s to
8 s (one log line per retry, not a traceback per second); the worker
retries too (RQ's backoff, capped at 8 s by swarmd) and reconnects;
``swarmctl status`` and ``swarmctl submit`` say Redis cannot be reached and
exit 3 meanwhile.  Once Redis is back, objectives from before and after the
outage all finish, each exactly once.  The outage here lasts until the
daemon's backoff has reached 4 s (~8 s); bench/soak.py runs longer ones.
"""

from __future__ import annotations

import re
import signal

from swarmd import constants as K
from tests.daemon.helpers import wait_final
from tests.faults.helpers import RedisProcess, Swarmd, echo_config, finished_counts, rows, swarmctl, write_jsonl
from tests.wait import LONG_S, wait_until


def test_redis_away_then_back_daemon_and_worker_reconnect_and_swarmctl_exits_3(tmp_path):
    (tmp_path / "redis").mkdir()
    server = RedisProcess(tmp_path / "redis")
    server.start()
    config = echo_config(tmp_path)
    daemon = Swarmd(tmp_path, config, workers=1, redis_url=server.url)
    worker_log = tmp_path / "data" / "worker-0.log"
    try:
        daemon.start()
        before = rows("before", 40)
        daemon.submit(before)
        wait_final(tmp_path / "data" / "memory.db", [r["id"] for r in before])

        server.stop(signal.SIGTERM)
        status = swarmctl("--config", str(config), "status", redis_url=server.url)
        assert status.returncode == 3, status
        assert "cannot reach Redis at redis://:****@127.0.0.1" in status.stderr and server.password not in status.stderr
        submit = swarmctl("--config", str(config), "submit", "--file",
                          str(write_jsonl(tmp_path / "lost.jsonl", rows("refused", 2))), redis_url=server.url)
        assert submit.returncode == 3 and "cannot reach Redis" in submit.stderr
        wait_until(lambda: "retrying in 4.0s" in daemon.log, LONG_S,
                   lambda: f"the daemon's backoff to reach 4 s; log: {daemon.log[-1500:]}", interval=0.2)
        wait_until(lambda: worker_log.exists() and "could not connect to Redis" in worker_log.read_text(), LONG_S,
                   "the worker to notice")
        assert daemon.proc.poll() is None                       # the daemon rides it out

        server.start()
        wait_until(lambda: "reading and handling the streams works again" in daemon.log, LONG_S,
                   lambda: f"the daemon to reconnect; log: {daemon.log[-1500:]}", interval=0.2)
        retries = re.findall(r"retrying in ([0-9.]+)s", daemon.log)
        assert retries[:4] == ["0.5", "1.0", "2.0", "4.0"]      # backoff, not a line per attempt
        wait_until(lambda: swarmctl("--config", str(config), "status", redis_url=server.url).returncode == 0, LONG_S,
                   "swarmctl status to say the daemon is alive again", interval=0.5)
        after = rows("after", 20)
        daemon.submit(after, name="after")                      # the worker reconnected and runs them
        ids = [r["id"] for r in before + after]
        records = wait_final(tmp_path / "data" / "memory.db", ids)
        assert {r["state"] for r in records.values()} == {"done"}
        client = daemon.client()
        wait_until(lambda: len(finished_counts(client)) == len(ids), LONG_S, "every finished event")
        assert set(finished_counts(client).values()) == {1}
        assert client.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
        assert daemon.proc.poll() is None
    finally:
        daemon.close()
        server.close()
