"""Fixtures of the learning-memory tests: an in-process daemon over the real
Redis of the session, with the workers' router on loopback fakes (a fake
Ollama as the local tier, the Anthropic fake through the official client as
the teacher)."""

from __future__ import annotations

import json
import math

import pytest
from rq import Queue

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.memory.audit import drain_audits
from swarmd.memory.records import Memory
from swarmd.objectives import validate
from swarmd.workers.context import ContextWorker, build_context
from tests.fakes import closed_port_url
from tests.fakes.config import make_config

SURE, UNSURE = math.log(0.95), math.log(0.3)
LABELS = ("feat", "fix", "docs")


class Swarm:
    """An in-process daemon and an RQ SimpleWorker on one real Redis."""

    def __init__(self, tmp_path, redis_conn, config):
        from swarmd.daemon.service import Daemon

        self.redis, self.config = redis_conn, config
        self.daemon = Daemon(config, tmp_path / "data", redis_conn)
        self.ctx = build_context(config, redis_conn, tmp_path / "data", "w-memory")

    def submit(self, *objectives: dict) -> None:
        """Submit ``objectives`` and let the daemon enqueue them."""
        for raw in objectives:
            obj = validate(raw, self.config)
            self.redis.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(obj.to_dict())})
        self.daemon.handle(self.daemon.read_streams(block_ms=100))

    def drain(self) -> None:
        """Persist every worker event and audit waiting in Redis (as the daemon's loop and jobs do)."""
        while self.daemon.drain_events():
            pass
        drain_audits(self.daemon.memory, self.redis)

    def run(self, *objectives: dict) -> None:
        """Submit ``objectives``, run their jobs and persist their events and audits."""
        self.submit(*objectives)
        ContextWorker([Q.queue(q, self.redis) for q in Q.QUEUES], self.ctx,
                      connection=self.redis).work(burst=True)
        self.drain()

    def close(self) -> None:
        self.daemon.close()
        self.ctx.close()


@pytest.fixture
def memory(tmp_path):
    """A :class:`~swarmd.memory.records.Memory` on ``<tmp>/memory.db``."""
    m = Memory(tmp_path / "memory.db")
    yield m
    m.close()


@pytest.fixture
def swarm_factory(tmp_path, redis_conn):
    """``make(fast_url, api_url, **config_sections)`` → a :class:`Swarm` whose
    LOCAL_QUALITY is unreachable (and ``memory.audit_rate`` 0 unless given)."""
    made = []

    def make(fast_url: str, api_url: str, **sections) -> Swarm:
        sections["memory"] = {"audit_rate": 0.0, **sections.get("memory", {})}   # audits only when a test asks
        swarm = Swarm(tmp_path, redis_conn, make_config(fast_url, closed_port_url(), api_url, **sections))
        made.append(swarm)
        return swarm

    yield make
    for swarm in made:
        swarm.close()
