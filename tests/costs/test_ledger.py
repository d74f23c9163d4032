"""The cost ledger's write-behind mode: rows recorded are written, in order,
by a background thread; reads, close and interpreter exit wait for them."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from swarmd.costs import Ledger, LedgerRow
from swarmd.store.db import connect

ROOT = Path(__file__).resolve().parents[2]


def row(i: int, objective: str = "o") -> LedgerRow:
    return LedgerRow("classify", "LOCAL_FAST", "echo", "m", 10 + i, 1, 0.0, 0.5, 0.9, "accepted",
                     objective_id=f"{objective}{i}", ts=1_700_000_000.0 + i)


def file_rows(path: Path) -> list[str]:
    """objective_id of every row in the file, read through a connection of its own."""
    conn = connect(path, readonly=True)
    try:
        return [r["objective_id"] for r in conn.execute("SELECT objective_id FROM ledger ORDER BY id")]
    finally:
        conn.close()


def test_write_behind_rows_are_written_in_order_and_read_back(tmp_path):
    ledger = Ledger(tmp_path / "l.db", write_behind=True)
    for i in range(500):
        ledger.record(row(i))
    assert [r["objective_id"] for r in ledger.rows()] == [f"o{i}" for i in range(500)]   # rows() flushes
    assert [r["tier"] for r in ledger.rows()] == ["LOCAL_FAST"] * 500
    ledger.record(row(500))
    ledger.close()                                       # close writes what is still queued
    assert file_rows(tmp_path / "l.db") == [f"o{i}" for i in range(501)]


def test_write_behind_keeps_every_row_of_concurrent_recorders(tmp_path):
    ledger = Ledger(tmp_path / "l.db", write_behind=True)

    def recorder(name: str) -> None:
        for i in range(200):
            ledger.record(row(i, name))

    threads = [threading.Thread(target=recorder, args=(f"t{k}-",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.close()
    written = file_rows(tmp_path / "l.db")
    assert sorted(written) == sorted(f"t{k}-{i}" for k in range(4) for i in range(200))
    for k in range(4):                                  # each recorder's rows in its order
        mine = [w for w in written if w.startswith(f"t{k}-")]
        assert mine == [f"t{k}-{i}" for i in range(200)]


def test_flush_reports_rows_still_queued_while_the_file_is_locked(tmp_path):
    path = tmp_path / "l.db"
    ledger = Ledger(path, write_behind=True)
    ledger.record(row(0))
    assert ledger.flush()
    blocker = connect(path)
    blocker.execute("BEGIN IMMEDIATE")                  # another writer holds the lock
    try:
        ledger.record(row(1))
        assert ledger.flush(timeout_s=0.3) is False     # the writer waits on SQLite's busy timeout
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert ledger.flush() is True
    assert file_rows(path) == ["o0", "o1"]
    ledger.close()


def test_rows_queued_at_interpreter_exit_are_written(tmp_path):
    path = tmp_path / "l.db"
    code = ("import sys; from swarmd.costs import Ledger, LedgerRow\n"
            "ledger = Ledger(sys.argv[1], write_behind=True)\n"
            "for i in range(300):\n"
            "    ledger.record(LedgerRow('classify', 'LOCAL_FAST', 'echo', 'm', 1, 1, 0.0, 0.1, 1.0, 'accepted',"
            " objective_id=f'x{i}'))\n")          # no close(): the exit hook must write them
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60,
                   env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert file_rows(path) == [f"x{i}" for i in range(300)]


def test_synchronous_ledger_row_is_in_the_file_when_record_returns(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    ledger.record(row(0))
    assert file_rows(tmp_path / "l.db") == ["o0"]       # no flush, no close
    ledger.close()
