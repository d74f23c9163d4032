"""The one way swarmd opens a SQLite database: :func:`connect`.

Every connection in ``src/`` is made here and gets: WAL (readers and writers never block
each other; set once per file; read-only connections do not try), ``synchronous=NORMAL``
(a commit survives a process crash, not an OS crash), a busy timeout of
:data:`BUSY_TIMEOUT_S` (30 s), ``foreign_keys=ON``, autocommit (``isolation_level=None``)
with multi-statement writes through :func:`transaction` (``BEGIN IMMEDIATE`` … ``COMMIT``),
and :class:`sqlite3.Row` rows.  Tables are not created here:
:func:`swarmd.store.schema.open_db` connects and migrates.  Why each setting: docs/design.md.
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
