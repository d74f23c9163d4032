"""RQ jobs are data: stored as JSON, and a worker runs only swarmd's job function.

Whoever can write to the Redis can put a job there.  With RQ's default
serializer (pickle) loading the job runs code; with any serializer RQ calls
whatever importable function the job names.  Real Redis, a real
:class:`~swarmd.workers.context.ContextWorker` in burst mode, echo provider.
"""

from __future__ import annotations

import json
import zlib

from rq import Queue
from rq.job import Job, JobStatus

from swarmd import queue as Q
from swarmd.config import load_config
from swarmd.workers.context import ContextWorker, build_context
from tests.daemon.helpers import write_config


class Boom:
    """Unpickling this object writes a marker file: what an attacker's pickle would do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _worker(tmp_path, redis_conn):
    ctx = build_context(load_config(write_config(tmp_path, fast_provider="echo")), redis_conn,
                        tmp_path / "data", "w-data")
    return ContextWorker([Q.queue("default", redis_conn)], ctx, connection=redis_conn)


def test_a_pickled_job_is_never_unpickled(tmp_path, redis_conn):
    marker = tmp_path / "pwned"
    Queue("default", connection=redis_conn).enqueue("swarmd.workers.jobs.run_objective", Boom(str(marker)))
    _worker(tmp_path, redis_conn).work(burst=True)
    assert not marker.exists()


def test_a_job_naming_another_function_is_refused(tmp_path, redis_conn):
    marker = tmp_path / "pwned"
    job = Q.queue("default", redis_conn).enqueue("pathlib.Path.touch", str(marker))
    _worker(tmp_path, redis_conn).work(burst=True)
    assert not marker.exists()
    job = Job.fetch(job.id, connection=redis_conn, serializer=Q.JOB_SERIALIZER)
    assert job.get_status() == JobStatus.FAILED
    assert "is not a swarmd job function" in job.latest_result().exc_string


def test_an_objective_job_is_json_and_its_result_too(tmp_path, redis_conn):
    objective = {"id": "json-1", "action": "classify", "input": "fix crash", "labels": ["feat", "fix"]}
    job = Q.queue("default", redis_conn).enqueue(Q.JOB_FUNC, objective)
    raw = redis_conn.hget(job.key, "data")
    assert json.loads(zlib.decompress(raw))[2] == [objective]   # (func, instance, args, kwargs) as JSON
    _worker(tmp_path, redis_conn).work(burst=True)
    job = Job.fetch(job.id, connection=redis_conn, serializer=Q.JOB_SERIALIZER)
    assert job.get_status() == JobStatus.FINISHED and job.return_value()["state"] == "done"
