"""The API's bearer token: ``<data dir>/api.token``.

The token file (32 random bytes, URL-safe base64, mode 0600; created on the
daemon's first start, replaced by ``swarmctl api token --rotate``) is
:mod:`swarmd.daemon.api_token`'s; the running API reads it again when it
changes, so the old token stops working at once.  Requests are checked with :func:`secrets.compare_digest`.
The dashboard's session cookie and CSRF field are HMACs of the token
(:meth:`TokenCheck.session`, :meth:`TokenCheck.csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from swarmd.daemon.api_token import TOKEN_FILE, ensure_token, read_token, rotate_token, token_path

__all__ = ["TOKEN_FILE", "TokenCheck", "ensure_token", "read_token", "rotate_token", "token_path"]

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
