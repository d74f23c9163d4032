"""A worker that took a job from its queue and died before starting it.

swarmd's workers listen on several queues, so RQ takes a job with BLPOP and
only then records it as started: a worker SIGKILLed in between leaves the
job ``queued`` in no queue and no registry, and nothing would ever run it
(bench/soak.py lost one objective this way).  The daemon finds such a job
(its objective ``queued`` in the store for 10 s, the job out of every queue
on two passes 10 s apart) and puts it back at the front of its queue
(:meth:`swarmd.daemon.service.Daemon.requeue_lost`).  Here the dead worker's
pop is done by hand; then a worker runs the objective, once.
"""

from __future__ import annotations

import subprocess
import sys


from swarmd import constants as K
from tests.daemon.helpers import daemon_env, wait_final
from tests.faults.helpers import Swarmd, echo_config, finished_counts, rows
from tests.wait import LONG_S, wait_until


def test_a_job_popped_by_a_worker_that_died_is_put_back_and_runs_once(tmp_path, redis_url, redis_conn):
    config = echo_config(tmp_path)
    daemon = Swarmd(tmp_path, config, workers=0, redis_url=redis_url)
    try:
        daemon.start()
        batch = rows("popped", 2)
        daemon.submit(batch)
        queue = "rq:queue:default"
        wait_until(lambda: redis_conn.llen(queue) == 2, LONG_S, "both jobs queued")
        taken = redis_conn.lpop(queue).decode()                 # the worker that died right after its BLPOP
        assert redis_conn.llen(queue) == 1
        wait_until(lambda: f"objective {taken}: its job was taken from queue default" in daemon.log, LONG_S,
                   lambda: f"the daemon to put {taken} back; log: {daemon.log[-1500:]}", interval=0.5)
        assert redis_conn.lpos(queue, taken) == 0               # at the front
        assert daemon.log.count("put back in the queue") == 1   # only the lost one, once

        worker = subprocess.run([sys.executable, "-m", "swarmd", "worker", "--burst", "--config", str(config),
                                 "--data-dir", str(daemon.data)], env=daemon_env(redis_url),
                                capture_output=True, text=True, timeout=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
        records = wait_final(daemon.data / "memory.db", [r["id"] for r in batch])
        assert {r["state"] for r in records.values()} == {"done"}
        wait_until(lambda: len(finished_counts(redis_conn)) == 2, LONG_S, "both finished events")
        assert set(finished_counts(redis_conn).values()) == {1}
        assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
    finally:
        daemon.close()
