"""Serving the API beside the daemon: :class:`ApiServer` (uvicorn in a thread).

One uvicorn server listens on two sockets bound here before it starts:
``<data dir>/api.sock`` (a unix socket, mode 0600: the owner's processes only)
and, unless ``api.listen`` is ``null``, TCP at ``api.listen``.  A listen host
that is not a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``) is
refused with :class:`~swarmd.errors.BadInput` unless ``api.allow_remote: true``
(no name is resolved: a host name other than ``localhost`` counts as remote);
an address that cannot be bound (in use) is logged as an error and the API
stays on the unix socket only: the daemon's work does not stop for it.
Once listening it writes ``<data dir>/api.url`` (``http://HOST:PORT``, the port
the kernel chose for port 0; ``http+unix://`` plus the quoted socket path when
there is no TCP listener) and creates the token file (:func:`swarmd.api.auth.ensure_token`).
Objectives it submits are traced (service ``swarmd-api``) when the ``OTEL_*`` variables ask.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import uvicorn
from loguru import logger

from swarmd import telemetry
from swarmd.api.app import ApiContext, create_app
from swarmd.api.auth import ensure_token
from swarmd.config import Config
from swarmd.errors import BadInput

#: Names in the data directory.
SOCKET_FILE = "api.sock"
URL_FILE = "api.url"
#: Seconds :meth:`ApiServer.start` waits for uvicorn to be serving.
START_TIMEOUT_S = 30.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is loopback; other names are not (nothing is resolved)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tcp_socket(listen: str, allow_remote: bool) -> socket.socket:
    """A listening TCP socket on ``listen`` (``HOST:PORT``).  Raises
    :class:`~swarmd.errors.BadInput` for a remote host without ``allow_remote``,
    ``OSError`` when the address cannot be bound (e.g. in use)."""
    host, _sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not allow_remote and not is_loopback(host):
        raise BadInput(f"api.listen {listen!r} is not a loopback address; set api.allow_remote: true to serve "
                       "other hosts (and put TLS in front of it), or listen on 127.0.0.1")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on sockets that say TCP, and without it
    # a response written in two parts waits for the client's delayed ACK (40 ms a request on Linux)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1" if host == "localhost" else host, int(port)))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def unix_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path`` (a stale one removed first), mode 0600."""
    if path.exists() or path.is_symlink():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def write_url(data_dir: Path, url: str) -> Path:
    """Write ``<data_dir>/api.url`` atomically (mode 0644: it holds no secret)."""
    path = Path(data_dir) / URL_FILE
    tmp = path.with_name(f".{URL_FILE}.{os.getpid()}.tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


class ApiServer:
    """The API of one daemon: :meth:`start` binds, writes ``api.url`` and serves
    in a daemon thread; :meth:`reload` swaps in the daemon's reloaded config;
    :meth:`stop` ends it and removes the socket and ``api.url``.

    ``redis_url``: returns the daemon's Redis URL once known (see
    :class:`~swarmd.api.app.ApiContext`).  Raises :class:`~swarmd.errors.BadInput`
    from :meth:`start` for a refused or unusable ``api.listen``."""

    def __init__(self, config: Config, data_dir: str | Path, db: str | Path, redis_url: Callable[[], str | None]):
        self.config = config
        self.data_dir = Path(data_dir)
        self.ctx = ApiContext(config, self.data_dir, Path(db), redis_url)
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> str:
        """Bind, create the token if missing, serve; returns the URL written to ``api.url``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_token(self.data_dir)
        telemetry.setup("swarmd-api")      # submit spans, as swarmctl's, when OTEL_* variables ask for traces
        sock_path = self.data_dir / SOCKET_FILE
        listen = self.config.api.listen
        tcp = None
        if listen:
            try:
                tcp = tcp_socket(listen, self.config.api.allow_remote)
            except OSError as exc:   # the daemon's work goes on: the API stays on the unix socket
                message = (f"API: cannot listen on api.listen {listen} ({exc.strerror or exc}); serving on the "
                           f"unix socket {sock_path} only")
                logger.error("{}", message)
                print(f"swarmd: warning: {message}", file=sys.stderr, flush=True)   # a start-up warning
        self._sockets = [s for s in (tcp, unix_socket(sock_path)) if s is not None]
        if tcp is not None:
            host, port = tcp.getsockname()[:2]
            self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        else:
            self.url = "http+unix://" + quote(str(sock_path), safe="")
        self._server = uvicorn.Server(uvicorn.Config(create_app(self.ctx), log_level="warning", access_log=False,
                                                     lifespan="off", timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": self._sockets},
                                        name="swarmd-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            raise BadInput("the HTTP API did not start (see the log)")
        write_url(self.data_dir, self.url)
        logger.info("API on {} and unix socket {}", self.url, sock_path)
        return self.url

    def reload(self, config: Config) -> None:
        """Serve with ``config`` from now on: the daemon's config after a SIGHUP reload (every
        route reads ``ctx.config`` per request).  The listeners, the token and the store stay
        (``api.listen`` and ``storage.db`` take effect when swarmd restarts)."""
        self.config = self.ctx.config = config

    def stop(self) -> None:
        """Stop serving (open event streams end), close the sockets, remove ``api.url`` and the socket."""
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
        for sock in self._sockets:
            sock.close()
        for name in (URL_FILE, SOCKET_FILE):
            try:
                (self.data_dir / name).unlink()
            except FileNotFoundError:
                pass
        self.ctx.close()
