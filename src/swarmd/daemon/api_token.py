"""The HTTP API's bearer token file: ``<data dir>/api.token``, shared by the API and ``swarmctl``.

The token is 32 random bytes, URL-safe base64 (:func:`secrets.token_urlsafe`),
in a file of mode 0600 created on the daemon's first start (:func:`ensure_token`)
and replaced by ``swarmctl api token --rotate`` (:func:`rotate_token`).  Here,
below both front ends, so that ``swarmctl`` never imports the API package; the
checks of presented tokens are :class:`swarmd.api.auth.TokenCheck`'s.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: The token file's name in the data directory.
TOKEN_FILE = "api.token"


def token_path(data_dir: str | Path) -> Path:
    """``<data_dir>/api.token``."""
    return Path(data_dir) / TOKEN_FILE


def _write(path: Path, token: str, exclusive: bool) -> None:
    """Write ``token`` to ``path`` with mode 0600: created exclusively, or
    replaced atomically through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if exclusive else path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(target, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(target, path)


def read_token(data_dir: str | Path) -> str | None:
    """The token in ``<data_dir>/api.token``, or ``None`` when the file is missing or empty."""
    try:
        return token_path(data_dir).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def ensure_token(data_dir: str | Path) -> str:
    """The token, created (mode 0600) when there is none yet.  Raises ``OSError``
    when the data directory cannot be written."""
    token = read_token(data_dir)
    if token is not None:
        return token
    try:
        _write(token_path(data_dir), secrets.token_urlsafe(32), exclusive=True)
    except FileExistsError:
        pass        # another process created it meanwhile: theirs stands
    return read_token(data_dir) or ensure_token(data_dir)


def rotate_token(data_dir: str | Path) -> str:
    """Replace the token with a new one (mode 0600, atomically); returns it."""
    token = secrets.token_urlsafe(32)
    _write(token_path(data_dir), token, exclusive=False)
    return token
