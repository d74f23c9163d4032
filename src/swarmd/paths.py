"""Where swarmd keeps its files.

The data directory is, in order: ``--data-dir``, ``$SWARMD_DATA_DIR``,
``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``, i.e.
``/var/lib/swarmd``), else the user's data directory from :mod:`platformdirs`
(``~/.local/share/swarmd`` on Linux).  The daemon records there the config
it loaded (``config.path``, :func:`write_config_path`), which ``swarmctl``
uses when no ``--config`` or ``$SWARMD_CONFIG`` is given.
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


#: File in the data directory naming the config the running daemon loaded (one absolute path).
CONFIG_PATH_FILE = "config.path"


def write_config_path(data: Path, config_path: str | os.PathLike | None) -> None:
    """Record in ``<data>/config.path`` the config file the daemon loaded
    (absolute), so that ``swarmctl --data-dir DATA`` prices, validates and
    routes with the same file (:func:`read_config_path`); ``None`` removes
    the record.  Written atomically (a temporary file, then rename)."""
    target = data / CONFIG_PATH_FILE
    if config_path is None:
        target.unlink(missing_ok=True)
        return
    tmp = target.with_name(f".{CONFIG_PATH_FILE}.{os.getpid()}")
    tmp.write_text(os.path.abspath(config_path) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def read_config_path(data: Path) -> str | None:
    """The config path the daemon of ``data`` recorded, when that record
    exists and names an existing file; else ``None``.  Never raises."""
    try:
        path = (data / CONFIG_PATH_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return path if path and os.path.isfile(path) else None

