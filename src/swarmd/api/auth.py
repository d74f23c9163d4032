"""The API's bearer token: ``<data dir>/api.token``.

The token is 32 random bytes, URL-safe base64 (:func:`secrets.token_urlsafe`),
in a file of mode 0600 created on the daemon's first start (:func:`ensure_token`)
and replaced by ``swarmctl api token --rotate`` (:func:`rotate_token`; the
running API reads the file again when it changes, so the old token stops
working at once).  Requests are checked with :func:`secrets.compare_digest`.
The dashboard's session cookie and CSRF field are HMACs of the token
(:meth:`TokenCheck.session`, :meth:`TokenCheck.csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
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


class TokenCheck:
    """Checks presented tokens against the file, read again whenever its
    modification time or size changes (a rotation takes effect at once)."""

    def __init__(self, data_dir: str | Path):
        self.path = token_path(data_dir)
        self._stamp: tuple[int, int] | None = None
        self._token: str | None = None

    def current(self) -> str | None:
        """The token in force, or ``None`` when the file is gone (then nothing is accepted)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._token = read_token(self.path.parent)
            self._stamp = stamp
        return self._token

    def ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is the token (constant-time comparison)."""
        token = self.current()
        return bool(token) and presented is not None and secrets.compare_digest(presented.encode(), token.encode())

    def _derived(self, purpose: bytes) -> str | None:
        token = self.current()
        return hmac.new(token.encode(), purpose, hashlib.sha256).hexdigest() if token else None

    def session(self) -> str | None:
        """The dashboard's session cookie value: HMAC-SHA256 of the token (rotation ends sessions)."""
        return self._derived(b"swarmd dashboard session")

    def csrf(self) -> str | None:
        """The CSRF field of the dashboard's forms: another HMAC of the token."""
        return self._derived(b"swarmd dashboard csrf")

    def session_ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is the current session cookie value."""
        expected = self.session()
        return bool(expected) and bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is the current CSRF field value."""
        expected = self.csrf()
        return bool(expected) and bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())
