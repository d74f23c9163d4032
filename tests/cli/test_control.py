"""`swarmctl list | cancel | retry` and `submit --wait`'s table, against a real swarmd (echo tier).

A cancelled objective never runs: a worker started after the cancel finds it in
its queue and leaves it (no attempt, no cost-ledger row, state stays ``cancelled``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from swarmd import cli
from swarmd.daemon.control import retry_id
from swarmd.daemon.store import Store
from tests.daemon.helpers import daemon_env, start_daemon, wait_final, write_config
from tests.wait import wait_until


@pytest.fixture
def env(redis_url, monkeypatch, tmp_path):
    for key, value in daemon_env(redis_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SWARMD_DATA_DIR", str(tmp_path / "data"))
    return write_config(tmp_path, fast_provider="echo")


@pytest.fixture
def ctl(env, capsys):
    def run(*argv):
        capsys.readouterr()
        code = cli.main(["--config", str(env), *argv])
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())
    return run


def _stored(tmp_path, oid: str) -> dict | None:
    path = tmp_path / "data" / "memory.db"
    if not path.exists():
        return None
    store = Store(path)
    try:
        return store.get(oid)
    finally:
        store.close()


def _burst_worker(tmp_path, redis_url, config) -> None:
    """``swarmd worker --burst``: runs every job queued, then exits."""
    subprocess.run([sys.executable, "-m", "swarmd", "worker", "--burst", "--data-dir", str(tmp_path / "data"),
                    "--config", str(config)], env=daemon_env(redis_url), check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ledger_rows(tmp_path, oid: str) -> int:
    store = Store(tmp_path / "data" / "memory.db")
    try:
        return store._conn.execute("SELECT COUNT(*) FROM ledger WHERE objective_id=?", (oid,)).fetchone()[0]
    finally:
        store.close()


def test_cancel_queued_never_runs_retry_is_one_new_objective(ctl, env, tmp_path, redis_url):
    daemon = start_daemon(tmp_path, redis_url, env, workers=0)
    try:
        assert ctl("submit", "--action", "classify", "--labels", "feat,fix", "--input", "first text", "--id", "c1")[0] == 0
        assert ctl("submit", "--action", "classify", "--labels", "feat,fix", "--input", "second text", "--id", "c2")[0] == 0
        wait_until(lambda: (_stored(tmp_path, "c1") or {}).get("state") == "queued", 60, "c1 queued")
        code, out, _err = ctl("cancel", "c1")
        assert code == 0 and "c1: cancelled (was queued)" in out
        wait_final(tmp_path / "data" / "memory.db", ["c1"], 60)
        _burst_worker(tmp_path, redis_url, env)              # runs c2; finds c1 cancelled and leaves it
        records = wait_final(tmp_path / "data" / "memory.db", ["c1", "c2"], 120)
        assert records["c1"]["state"] == "cancelled" and records["c1"]["attempts"] == []
        assert records["c2"]["state"] == "done"
        assert _ledger_rows(tmp_path, "c1") == 0 and _ledger_rows(tmp_path, "c2") >= 1

        code, _out, err = ctl("cancel", "c1")                  # ended: a clear error, exit 2 (bad input)
        assert code == 2 and "has ended (cancelled)" in err
        code, _out, err = ctl("cancel", "nosuch")
        assert code == 2 and "no objective 'nosuch'" in err
        code, _out, err = ctl("retry", "c2")
        assert code == 2 and "is done; only failed, unresolved, cancelled" in err

        first, second = ctl("retry", "c1"), ctl("retry", "c1")
        new = retry_id("c1")
        assert first[:2] == second[:2] == (0, new + "\n")
        _burst_worker(tmp_path, redis_url, env)
        retried = wait_final(tmp_path / "data" / "memory.db", [new], 120)[new]
        assert (retried["state"], retried["retry_of"], retried["input"]) == ("done", "c1", "first text")
        store = Store(tmp_path / "data" / "memory.db")
        try:                                                  # submitted twice, stored and run once
            assert store._conn.execute("SELECT COUNT(*) FROM objectives WHERE retry_of='c1'").fetchone()[0] == 1
        finally:
            store.close()

        code, out, _err = ctl("list", "--state", "cancelled", "--json")
        assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["c1"]
        code, out, _err = ctl("list", "--json", "--limit", "2")
        listed = [json.loads(line) for line in out.splitlines()]
        assert [r["id"] for r in listed] == [new, "c2"]      # newest first
        code, out, _err = ctl("list", "--action", "classify")
        assert code == 0 and "c1" in out and "cancelled" in out
        assert ctl("list", "--limit", "0")[0] == 2 and ctl("list", "--since", "yesterday")[0] == 2
    finally:
        daemon.terminate()
        daemon.wait(60)


def test_cancel_before_admission_never_runs(ctl, env, tmp_path, redis_url):
    assert ctl("submit", "--action", "classify", "--labels", "feat,fix", "--input", "text", "--id", "early")[0] == 0
    code, out, _err = ctl("cancel", "early")                  # no daemon yet: only in the stream
    assert code == 0 and "(was submitted)" in out
    daemon = start_daemon(tmp_path, redis_url, env, workers=1)
    try:
        assert ctl("submit", "--action", "classify", "--labels", "feat,fix", "--input", "later", "--id", "after")[0] == 0
        records = wait_final(tmp_path / "data" / "memory.db", ["after", "early"], 120)
        assert records["after"]["state"] == "done"
        assert records["early"]["state"] == "cancelled" and records["early"]["attempts"] == []
        assert _ledger_rows(tmp_path, "early") == 0
    finally:
        daemon.terminate()
        daemon.wait(60)


def test_submit_wait_prints_each_objective(ctl, env, tmp_path, redis_url):
    daemon = start_daemon(tmp_path, redis_url, env, workers=1)
    try:
        code, out, _err = ctl("submit", "--action", "classify", "--labels", "feat,fix", "--input", "hello there", "--id", "w1",
                              "--wait", "--timeout", "120")
        assert code == 0 and "w1" in out and "done" in out and "LOCAL_FAST" in out
        code, out, _err = ctl("submit", "--action", "classify", "--labels", "feat,fix", "--input", "hello again", "--id", "w2",
                              "--wait", "--timeout", "120", "--json")
        row = json.loads(out.strip().splitlines()[-1])
        stored = _stored(tmp_path, "w2")
        assert code == 0 and (row["id"], row["state"], row["tier"]) == ("w2", "done", stored["tier"])
        assert row["answer"] == stored["answer"]
    finally:
        daemon.terminate()
        daemon.wait(60)


def test_submit_wait_table_shows_the_first_rows_and_counts_the_rest(ctl, env, tmp_path, redis_url):
    from swarmd.cli.objectives import RESULT_TABLE_ROWS
    lines = tmp_path / "many.jsonl"
    n = RESULT_TABLE_ROWS + 3
    lines.write_text("".join(json.dumps({"id": f"m{i}", "action": "classify", "labels": ["feat", "fix"],
                                         "input": f"message {i}"}) + "\n" for i in range(n)))
    daemon = start_daemon(tmp_path, redis_url, env, workers=1)
    try:
        code, out, _err = ctl("submit", "--file", str(lines), "--wait", "--timeout", "300")
        shown = {f"m{i}" for i in range(n) if f"│ m{i} " in out}
        assert code == 0 and shown == {f"m{i}" for i in range(RESULT_TABLE_ROWS)}
        assert "... and 3 more" in out
        again = tmp_path / "again.jsonl"        # new ids: the ones above ended already
        again.write_text(lines.read_text().replace('"id": "m', '"id": "j'))
        code, out, _err = ctl("submit", "--file", str(again), "--wait", "--timeout", "300", "--json")
        assert code == 0, out
        assert {json.loads(line)["id"] for line in out.strip().splitlines()} == {f"j{i}" for i in range(n)}, out[:600]
    finally:
        daemon.terminate()
        daemon.wait(60)
