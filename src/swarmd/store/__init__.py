"""Storage: every SQLite file swarmd keeps, and how it is opened.

* :mod:`swarmd.store.db` — :func:`connect`, the one place a SQLite connection
  is made (WAL, 30 s busy timeout, foreign keys on; read-only mode for
  readers).
* :mod:`swarmd.store.schema` — the schema registry: every table as a numbered
  migration tagged with its owning component, applied on open
  (:func:`open_db`) and tracked in ``PRAGMA user_version``.
* :func:`swarmd.store.db.transaction` — the one ``BEGIN IMMEDIATE`` …
  ``COMMIT`` helper every multi-statement write uses.

Rows of other components are written by their own code over these
connections: the cost ledger by :mod:`swarmd.costs.ledger`, the audit log by
:mod:`swarmd.governor.audit`, the learning memory's verified outcomes by
:mod:`swarmd.memory.records`.  Where the file is: :func:`swarmd.paths.db_path`.

This package imports only :mod:`swarmd.errors` besides its own modules, so
any component can use it without an import cycle.  The daemon's objective
store (objectives, attempts and the rows arriving in worker events) is
:class:`swarmd.daemon.store.Store`, above the components whose rows it writes.
"""

from swarmd.store.db import BUSY_TIMEOUT_S, connect, transaction
from swarmd.store.schema import SCHEMA_VERSION, SchemaTooNew, open_db

__all__ = ["BUSY_TIMEOUT_S", "SCHEMA_VERSION", "SchemaTooNew", "connect", "open_db", "transaction"]
