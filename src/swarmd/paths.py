"""Where swarmd keeps its files.

The data directory is, in order: ``--data-dir``, ``$SWARMD_DATA_DIR``,
``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``, i.e.
``/var/lib/swarmd``), else the user's data directory from :mod:`platformdirs`
(``~/.local/share/swarmd`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir


def data_dir(explicit: str | os.PathLike | None = None, create: bool = True) -> Path:
    """The data directory, as an absolute path: a relative ``--data-dir`` or
    variable is taken from the current directory here, once, so processes
    started elsewhere (redis-server runs in its own directory, workers and
    ``swarmctl`` get the path passed on) see the same one.  Created if
    missing when ``create`` (the daemon, commands that write); a command that
    only reads passes ``create=False`` and gets the path, which may not
    exist."""
    chosen = explicit or os.environ.get("SWARMD_DATA_DIR") or os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    path = Path(chosen).expanduser().absolute() if chosen else Path(user_data_dir("swarmd"))
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def db_path(data: Path, configured: str) -> Path:
    """The SQLite store: ``configured`` if absolute, else under ``data``."""
    p = Path(configured).expanduser()
    return p if p.is_absolute() else data / p
