"""Storage: every SQLite file swarmd keeps, and how it is opened.

* :mod:`swarmd.store.db` — :func:`connect`, the one place a SQLite connection is made, and
  :func:`~swarmd.store.db.transaction`, the one ``BEGIN IMMEDIATE`` … ``COMMIT`` helper.
* :mod:`swarmd.store.schema` — every table as a numbered migration, applied on open
  (:func:`open_db`) and tracked in ``PRAGMA user_version``.

Other components write their own rows over these connections (the ledger, the audit log,
the learning memory); the objective store is :class:`swarmd.daemon.store.Store`.  This
package imports only :mod:`swarmd.errors`.  Where the file is: :func:`swarmd.paths.db_path`.
"""

from swarmd.store.db import BUSY_TIMEOUT_S, connect, transaction
from swarmd.store.schema import SCHEMA_VERSION, SchemaTooNew, open_db

__all__ = ["BUSY_TIMEOUT_S", "SCHEMA_VERSION", "SchemaTooNew", "connect", "open_db", "transaction"]
