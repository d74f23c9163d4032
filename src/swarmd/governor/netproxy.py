"""The loopback filtering proxy: the only way out of a sandbox with ``sandbox.network: true``.

swarmd runs this HTTP proxy on a unix socket bound into the sandbox; a bridge inside
(:data:`BRIDGE`) listens on the sandbox's ``127.0.0.1:3128`` and forwards to it, and
``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` point there.  It understands ``CONNECT
host:port`` and absolute-URI requests.  Each is judged exactly as ``http_get`` is
(:func:`urls.judge_url`; anything but ``allow`` is refused), the name is resolved by the
proxy and refused when any address is not public (:func:`urls.resolve_checked`), and the
connection is pinned to a checked address.

Refused: ``403 Forbidden`` with ``X-Proxy-Error: <rule id>`` and a log line ``netproxy
refused ...``; unreachable host: ``502``; malformed request: ``400``.  Threads, stdlib only.
Design: docs/design.md.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import selectors
import shutil
import socket
import socketserver
import tempfile
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from loguru import logger

from swarmd.errors import SwarmdError

from .policy import Decision, Policy
from .urls import Resolver, default_resolver, judge_url, resolve_checked

#: where the proxy's unix socket is bound inside the sandbox
SANDBOX_SOCKET = "/run/swarmd-proxy.sock"
#: the bridge's TCP port on the sandbox's loopback
SANDBOX_PORT = 3128
PROXY_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
#: environment set inside the sandbox when the network goes through the proxy
PROXY_ENV = {**{k: PROXY_URL for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                       "all_proxy")}, "NO_PROXY": "", "no_proxy": ""}
#: a request's head (request line + headers) larger than this is refused (400)
MAX_HEAD_BYTES = 64 * 1024
#: seconds a client may take to send its request head
HEAD_TIMEOUT_S = 30.0
#: seconds a tunnel may stay idle before it is closed
IDLE_TIMEOUT_S = 300.0
#: proxies kept by :func:`shared` (one per distinct policy)
SHARED_MAX = 8
_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "proxy-authenticate", "connection", "keep-alive"}

#: the bridge run inside the sandbox: ``python3 -I -S -c BRIDGE SOCKET ARGV...`` listens on
#: 127.0.0.1:3128, forks a child serving connections (each forwarded to SOCKET), and the parent
#: execs ARGV (the child dies with the sandbox's PID namespace)
BRIDGE = r"""
import os, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d)); s.listen(64)
if os.fork() == 0:
    n = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2): os.dup2(n, fd)
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d: break
                b.sendall(d)
        except OSError: pass
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
    def serve(c):
        u = socket.socket(socket.AF_UNIX)
        try: u.connect(sys.argv[1])
        except OSError: c.close(); return
        t = threading.Thread(target=pump, args=(u, c), daemon=True); t.start()
        pump(c, u); t.join(); u.close(); c.close()
    while True:
        c = s.accept()[0]
        threading.Thread(target=serve, args=(c,), daemon=True).start()
s.close()
try: os.execvp(sys.argv[2], sys.argv[2:])
except OSError as e:
    sys.stderr.write("%%s: %%s\n" %% (sys.argv[2], e.strerror)); os._exit(127)
""" % SANDBOX_PORT


class _Refused(SwarmdError):
    """A request the proxy refuses: ``status`` (HTTP, 403/400/502) and the policy ``rule``."""

    def __init__(self, status: int, rule: str, reason: str):
        super().__init__(reason)
        self.status, self.rule, self.reason = status, rule, reason


class NetProxy:
    """A filtering HTTP proxy for ``policy`` on a unix socket (see module docstring).

    ``resolve``: DNS (host -> list of IP strings; default
    :func:`urls.default_resolver`). ``allow_private_addresses_for_tests``:
    TEST ONLY — skips the public-address check on resolved names (so tests can
    reach a loopback server by an allowlisted name); never set it elsewhere.
    ``socket_path``: the listening socket, in a fresh private (0700) directory.
    Start with :meth:`start`, stop with :meth:`close`; raises ``OSError`` when
    the socket cannot be created.
    """

    def __init__(self, policy: Policy, resolve: Resolver | None = None, *,
                 allow_private_addresses_for_tests: bool = False):
        self.policy = policy
        self.resolve = resolve or default_resolver
        self.allow_private_addresses_for_tests = allow_private_addresses_for_tests
        self._dir = tempfile.mkdtemp(prefix="swarmd-netproxy-")
        self.socket_path = os.path.join(self._dir, "proxy.sock")
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        self._server.daemon_threads = True
        os.chmod(self.socket_path, 0o666)  # the non-root sandboxed user connects; the directory is 0700
        self._thread: threading.Thread | None = None

    def start(self) -> "NetProxy":
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="netproxy", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening and remove the socket's directory (open tunnels finish on their own)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "NetProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ one request
    def check(self, url: str) -> tuple[str, int, tuple[str, ...]]:
        """Judge ``url`` and resolve its host. Returns ``(host, port, ips)``
        (ips checked, to connect to in order). Raises ``_Refused`` (403 with
        the rule id) when the URL is not allowed or an address is not public."""
        v = judge_url(self.policy, url)
        if v.decision.decision != "allow":
            raise _Refused(403, v.decision.rule, v.decision.reason)
        if v.ips:
            return v.host, v.port, v.ips
        if self.allow_private_addresses_for_tests:
            ips = tuple(self.resolve(v.host) or ())
            if not ips:
                raise _Refused(403, "url.unresolvable", f"host {v.host!r} did not resolve")
            return v.host, v.port, ips
        bad, ips = resolve_checked(self.policy, v.host, self.resolve)
        if bad is not None:
            raise _Refused(403, bad.rule, bad.reason)
        return v.host, v.port, ips

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(HEAD_TIMEOUT_S)
        target = "?"
        try:
            head, rest = _read_head(client)
            method, uri, version, headers = _parse_head(head)
            if method == "CONNECT":
                name, sep, port_s = uri.rpartition(":")
                if not sep or not port_s.isdigit():
                    raise _Refused(400, "proxy.malformed", f"bad CONNECT target {uri!r}")
                target = f"https://{name}:{int(port_s)}/"
            else:
                if not uri.lower().startswith(("http://", "https://")):
                    raise _Refused(400, "proxy.malformed", "only absolute http:// URIs and CONNECT are proxied")
                target = uri
            host, port, ips = self.check(target)
            upstream = self._connect(host, port, ips)
        except _Refused as e:
            if e.status == 403:
                logger.warning("netproxy refused {} ({}): {}", target, e.rule, e.reason)
            _reply(client, e.status, e.rule, e.reason)
            client.close()
            return
        except (OSError, ValueError) as e:
            _reply(client, 400, "proxy.malformed", str(e) or type(e).__name__)
            client.close()
            return
        logger.info("netproxy {} {} -> {}", method, target, upstream.getpeername()[0])
        try:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                parts = urlsplit(uri)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                lines = [f"{method} {path} {version}", f"Host: {parts.netloc}"]
                lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_HEADERS | {"host"}]
                lines.append("Connection: close")
                upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if rest:
                upstream.sendall(rest)
            _splice(client, upstream)
        except OSError:
            pass
        finally:
            upstream.close()
            client.close()

    def _connect(self, host: str, port: int, ips: tuple[str, ...]) -> socket.socket:
        timeout = self.policy.execution.http_timeout_s
        last: OSError | None = None
        for ip in ips:
            try:
                s = socket.create_connection((ip, port), timeout)
                s.settimeout(None)
                return s
            except OSError as e:
                last = e
        raise _Refused(502, "proxy.unreachable", f"{host}:{port} unreachable ({last})")


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD_BYTES:
            raise _Refused(400, "proxy.malformed", "request head too large")
        chunk = sock.recv(65536)
        if not chunk:
            raise _Refused(400, "proxy.malformed", "connection closed before the request head ended")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _Refused(400, "proxy.malformed", f"bad request line {lines[0][:100]!r}")
    headers = []
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep or not k or k != k.strip():
            raise _Refused(400, "proxy.malformed", f"bad header line {line[:100]!r}")
        headers.append((k, v.strip()))
    return parts[0].upper(), parts[1], parts[2], headers


def _reply(sock: socket.socket, status: int, rule: str, reason: str) -> None:
    text = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}.get(status, "Error")
    body = f"swarmd proxy: {reason}\n".encode("utf-8", "replace")
    head = (f"HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Proxy-Error: {rule}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    try:
        sock.sendall(head.encode("latin-1") + body)
    except OSError:
        pass


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both sides have finished sending (or
    :data:`IDLE_TIMEOUT_S` passes without traffic)."""
    sel = selectors.DefaultSelector()
    peer = {a: b, b: a}
    for s in (a, b):
        sel.register(s, selectors.EVENT_READ)
    open_ = 2
    try:
        while open_:
            events = sel.select(IDLE_TIMEOUT_S)
            if not events:
                return
            for key, _ in events:
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                data = src.recv(65536)
                if data:
                    peer[src].sendall(data)
                    continue
                sel.unregister(src)
                open_ -= 1
                try:
                    peer[src].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()


_shared_lock = threading.Lock()
_shared: "OrderedDict[str, NetProxy]" = OrderedDict()


def shared(policy: Policy) -> NetProxy:
    """The process's running proxy for ``policy`` (one per distinct policy
    content, started on first use, at most :data:`SHARED_MAX` kept: the least
    recently used is closed; all are closed at exit). Raises ``OSError`` when
    the socket cannot be created."""
    key = hashlib.sha256(policy.model_dump_json().encode()).hexdigest()
    with _shared_lock:
        p = _shared.get(key)
        if p is not None and os.path.exists(p.socket_path):
            _shared.move_to_end(key)
            return p
        p = NetProxy(policy).start()
        if not _shared:
            atexit.register(_close_all)
        _shared[key] = p
        while len(_shared) > SHARED_MAX:
            _shared.popitem(last=False)[1].close()
        return p


def _close_all() -> None:
    with _shared_lock:
        for p in _shared.values():
            p.close()
        _shared.clear()


def decision_for(proxy: NetProxy, url: str) -> Decision:
    """What ``proxy`` would do with ``url`` (for ``policy check``-style
    tooling and tests): ``allow`` with the pinned addresses in the reason, or
    the refusing ``deny``. Never raises."""
    try:
        host, port, ips = proxy.check(url)
    except _Refused as e:
        return Decision("deny", e.rule, e.reason)
    return Decision("allow", "proxy.allowed", f"{host}:{port} -> {', '.join(ips)}")


__all__ = ["BRIDGE", "NetProxy", "PROXY_ENV", "SANDBOX_SOCKET", "decision_for", "shared"]
