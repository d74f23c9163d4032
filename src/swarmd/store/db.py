"""The one way swarmd opens a SQLite database: :func:`connect`.

Every SQLite connection in ``src/`` (the daemon's store, the cost ledger, the
governor's audit log, cost reports, Prometheus metrics) is made here, so all
of them share these settings:

* **WAL** (``journal_mode=WAL``): readers (``swarmctl report``, metrics, the
  daily report) never block the daemon's writes and the daemon never blocks
  them; several processes on one host can write (``swarmctl ask`` appends to
  the same ledger as the daemon).  WAL is a property of the file, so it is
  set once and stays; read-only connections cannot set it and do not try.
* ``synchronous=NORMAL``: in WAL mode a commit survives a crash of any swarmd
  process; only an OS crash or power loss can lose the last commits.  This is
  the setting the store has always had (FULL would fsync on every commit of
  the daemon's event batches).
* **busy timeout 30 s** (:data:`BUSY_TIMEOUT_S`): a writer waits for another
  writer's transaction instead of failing with ``database is locked``.  The
  longest transaction swarmd runs is one batch of worker events (milliseconds),
  so 30 s only runs out when a process is stuck holding the lock — then the
  error is the right answer.  30 s was the store's and the ledger's value;
  the audit log used 10 s and metrics/reports the default 5 s before they
  came here.
* ``foreign_keys=ON``: SQLite ignores ``REFERENCES`` clauses unless each
  connection turns them on; on everywhere, a table that declares a foreign key
  (see :mod:`swarmd.store.schema`) gets it enforced whoever writes.
* autocommit (``isolation_level=None``): a statement outside ``BEGIN`` commits
  at once; multi-statement writes go through :func:`transaction` (``BEGIN
  IMMEDIATE`` … ``COMMIT``).  Rows come back as
  :class:`sqlite3.Row` (index or column name).

Tables are not created here: :func:`swarmd.store.schema.open_db` connects and
then migrates the file to the current schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Seconds a connection waits for another writer's lock before ``database is locked``.
BUSY_TIMEOUT_S = 30.0


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the SQLite file ``path`` with swarmd's settings (module docstring).

    ``readonly=False`` creates the file (and its parent directories) if
    missing and puts it in WAL mode.  ``readonly=True`` opens an existing file
    for reading only (``mode=ro``: nothing is created or changed; raises
    ``sqlite3.OperationalError`` if the file does not exist).  The connection
    may be used from any thread; callers that share one serialize access with
    a lock.  Raises ``sqlite3.Error`` when the file cannot be opened.
    """
    timeout = BUSY_TIMEOUT_S
    if readonly:
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=timeout,
                               check_same_thread=False, isolation_level=None)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction on ``conn`` (autocommit, as from :func:`connect`):
    ``BEGIN IMMEDIATE`` (takes the write lock now, waiting up to
    :data:`BUSY_TIMEOUT_S`), yields ``conn``, then ``COMMIT``; ``ROLLBACK``
    and re-raise on any exception (``BaseException`` included, so an
    interrupted batch writes nothing).  Callers sharing ``conn`` between
    threads hold their lock around it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
