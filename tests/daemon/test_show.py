"""``swarmctl show ID`` from the daemon's Redis mirror (the store not
reachable from where swarmctl runs) prints what the store would: the state and
the result fields (answer, confidence, tier, model, cost, escalations, reason)
of objectives the daemon mirrored with :meth:`Daemon.apply_events`.  Real
redis-server and store; the daemon in process."""

from __future__ import annotations

import json

import pytest

from swarmd import cli
from swarmd.objectives import Objective
from swarmd.daemon.store import RESULT_FIELDS

UNRESOLVED = {"state": "unresolved", "action": "classify", "ts": 5.0, "attempts": [], "result": {
    "id": "u1", "answer": "fix", "confidence": 0.4213, "tier": "API_FALLBACK", "model": "claude-x",
    "status": "unresolved", "escalations": 2, "cost_usd": 0.00125, "latency_ms": 812.5, "reason": "budget"}}


@pytest.fixture
def show(daemon, redis_url, tmp_path, capsys):
    """``show ID [--json]`` (exit code, stdout) with the daemon's config and store
    (``store=True``) or with a data directory holding none, so it reads the daemon's Redis."""
    def run(*argv, store=False):
        data = daemon.data_dir if store else tmp_path / "elsewhere"
        capsys.readouterr()
        code = cli.main(["--config", str(tmp_path / "llm_config.yaml"), "--data-dir", str(data),
                         "show", *argv, "--redis-url", redis_url])
        return code, capsys.readouterr().out
    return run


def fields(text: str) -> dict[str, str]:
    """The ``key  value`` rows of ``show``'s output, for the result fields."""
    rows = (line.split(maxsplit=1) for line in text.splitlines())
    return {row[0]: row[1].strip() for row in rows if len(row) == 2 and row[0] in RESULT_FIELDS}


def test_show_from_redis_prints_tier_reason_confidence_and_cost_as_from_the_store(daemon, show):
    for oid in ("u1", "f1"):
        daemon.store.add_queued(Objective(id=oid, action="classify", input="x", labels=["feat", "fix"],
                                          submitted_at=1.0))
    daemon.apply_events([("1-0", "finished", "u1", UNRESOLVED),
                         ("failed:f1", "failed", "f1", {"reason": "JobTimeoutException: 300 s", "ts": 6.0})])
    code, text = show("u1")
    assert code == 1 and "u1" in text and "unresolved" in text.splitlines()[0]     # no accepted answer: exit 1
    assert fields(text) == {"answer": "fix", "confidence": "0.4213", "tier": "API_FALLBACK", "model": "claude-x",
                            "cost_usd": "0.00125", "escalations": "2", "reason": "budget"}
    assert fields(text) == fields(show("u1", store=True)[1])          # same labels and values as from the store

    code, text = show("f1")
    assert code == 1 and "failed" in text.splitlines()[0] and fields(text) == {"reason": "JobTimeoutException: 300 s"}

    for oid in ("u1", "f1"):
        mirrored, stored = json.loads(show(oid, "--json")[1]), json.loads(show(oid, "--json", store=True)[1])
        assert {k: mirrored[k] for k in ("id", "state", *RESULT_FIELDS)} == {
            k: stored[k] for k in ("id", "state", *RESULT_FIELDS)}
