"""systemd service notification (``sd_notify``) without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket); each notification is one datagram of UTF-8 ``KEY=VALUE`` lines (``READY=1``,
``STATUS=...``, ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC``).  :class:`Notifier` sends
them and never raises into the daemon: failures are logged and the call returns ``False``.
Why not the ``sdnotify`` package: docs/design.md.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping, MutableMapping

from loguru import logger

__all__ = ["Notifier"]

#: Seconds one ``sendto`` may block when systemd's receive queue is full.
SEND_TIMEOUT_S = 2.0

_ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(raw: str | None) -> str | None:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value, or ``None`` if unusable."""
    if not raw:
        return None
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # e.g. systemd >= 254's "vsock:CID:PORT" (for VMs); not needed for a host service.
    logger.warning("systemd notify: unsupported NOTIFY_SOCKET {!r}; notifications disabled", raw)
    return None


class Notifier:
    """Sends systemd notifications to ``$NOTIFY_SOCKET``; a no-op when it is unset.

    ``env``: where to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
    ``WATCHDOG_PID`` (default :data:`os.environ`), read once here.
    ``unset_environment``: remove those three variables from ``env`` after
    reading them, so child processes (workers) do not inherit them.

    ``enabled`` is ``True`` when a usable ``$NOTIFY_SOCKET`` was given.  Every
    method returns ``True`` if the datagram was sent, ``False`` if disabled or
    sending failed (logged as a warning; never raised).  Safe to call from
    several threads.
    """

    def __init__(self, env: MutableMapping[str, str] | Mapping[str, str] | None = None, *,
                 unset_environment: bool = False) -> None:
        env = os.environ if env is None else env
        self._raw_socket = env.get("NOTIFY_SOCKET") or None
        self._address = _socket_address(self._raw_socket)
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self.enabled: bool = self._address is not None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failing = False
        if unset_environment and isinstance(env, MutableMapping):
            for name in _ENV_VARS:
                env.pop(name, None)

    # ------------------------------------------------------------------ messages

    def ready(self) -> bool:
        """``READY=1``: start-up (or a reload) is complete."""
        return self.notify("READY=1")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive; send at least every :meth:`watchdog_interval_s` seconds."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """``STATUS=<text>``: one line shown by ``systemctl status`` (newlines become spaces)."""
        text = str(text).replace("\r", " ").replace("\n", " ")
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=<now>``: a reload has begun.

        Send :meth:`ready` when it is done (systemd waits for it).
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def notify(self, message: str) -> bool:
        """Send ``message`` (newline-separated ``KEY=VALUE`` lines) as one UTF-8 datagram."""
        if not self.enabled:
            return False
        try:
            data = message.encode("utf-8", errors="replace")
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.settimeout(SEND_TIMEOUT_S)
                self._sock.sendto(data, self._address)
                recovered, self._failing = self._failing, False
        except Exception as exc:  # noqa: BLE001 - must never raise into the daemon
            with self._lock:
                first, self._failing = not self._failing, True
            # log the first failure loudly, repeats quietly (watchdog pings are frequent)
            (logger.warning if first else logger.debug)(
                "systemd notify to {!r} failed: {}: {}", self._raw_socket, type(exc).__name__, exc)
            return False
        if recovered:
            logger.info("systemd notify to {!r} works again", self._raw_socket)
        return True

    # ------------------------------------------------------------------ watchdog

    def watchdog_interval_s(self) -> float | None:
        """Seconds between :meth:`watchdog` calls, or ``None`` if no watchdog applies.

        Half of ``$WATCHDOG_USEC`` (converted to seconds), as systemd
        recommends; ``None`` when notifications are disabled, the variable is
        unset or not a positive integer, or ``$WATCHDOG_PID`` names another
        process.
        """
        try:
            if not self.enabled or not self._watchdog_usec:
                return None
            if self._watchdog_pid and int(self._watchdog_pid) != os.getpid():
                return None
            usec = int(self._watchdog_usec)
            return usec / 2 / 1_000_000 if usec > 0 else None
        except Exception as exc:  # noqa: BLE001
            logger.warning("systemd notify: ignoring bad WATCHDOG_USEC={!r}/WATCHDOG_PID={!r}: {}",
                           self._watchdog_usec, self._watchdog_pid, exc)
            return None

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the socket (a later message reopens it)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"Notifier(enabled={self.enabled}, socket={self._raw_socket!r})"
