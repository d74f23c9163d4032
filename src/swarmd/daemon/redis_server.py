"""Find the Redis swarmd uses, or start swarmd's own ``redis-server``.

:func:`ensure_redis` connects to an explicit URL (``--redis-url``, ``$REDIS_URL`` or
``daemon.redis_url``), else starts ``redis-server`` as a child with its append-only file in
``<data_dir>/redis`` (fsync every second).  It never uses a Redis merely found on localhost,
and refuses an explicit one that answers without a password unless ``allow_unauthenticated``.
Its own server listens on ``<data_dir>/redis/redis.sock`` (directory mode 0700; a loopback
port when that path is over :data:`MAX_SOCKET_PATH` bytes) with a random password given on
stdin.  The URL goes to ``<data_dir>/redis.url`` (mode 0600, :func:`write_url_file`); logs use
:func:`mask_url`.  Why: docs/design.md.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psutil
import redis
from loguru import logger

from swarmd.errors import Unreachable

__all__ = [
    "URL_FILE", "RedisUnavailable", "UnauthenticatedRedis", "RedisHandle", "ensure_redis",
    "mask_url", "write_url_file", "read_url_file", "free_port", "requires_auth",
]

#: Name of the file in the data dir holding the URL of the Redis in use.
URL_FILE = "redis.url"
#: Sub-directory of the data dir where our own server keeps its files.
REDIS_SUBDIR = "redis"
LOG_NAME = "redis-server.log"
PID_NAME = "redis-server.pid"
SOCKET_NAME = "redis.sock"
#: What swarmd's own redis-server can lose of what it acknowledged, by fault.
#: It runs with ``appendonly yes`` and ``appendfsync everysec``.  Redis
#: write(2)s the commands of an event-loop pass to the append-only file before
#: it sends their replies (``flushAppendOnlyFile`` in ``beforeSleep``) and
#: fsyncs the file about once a second in a background thread.  So:
#:
#: * redis-server killed (SIGKILL, OOM killer, a crash of Redis alone): nothing
#:   acknowledged is lost -- the writes are in the kernel's page cache and the
#:   server started again (swarmd exits 3 when its own server dies, see
#:   :meth:`RedisHandle.watch`, and is restarted with it) reads them back
#:   (tests/faults/test_redis_killed.py) --
#:   except when the disk is so slow that the previous fsync is still running:
#:   then Redis postpones its writes for up to 2 s and still replies, and a kill
#:   in that window loses those (the server log says "Asynchronous AOF fsync is
#:   taking too long").
#: * kernel crash or power cut: the writes not yet fsynced, normally the last
#:   ~1 s, up to ~2 s on such a slow disk.  For swarmd that is objectives
#:   ``swarmctl submit`` reported as submitted, and worker events.
#:
#: ``appendfsync always`` closes both windows, at a cost measured by
#: bench/redis_fsync.py (2 cores, ext4): a one-objective submit 0.05 -> 3.9 ms
#: p50, echo objectives end to end 181 -> 14.6 /s (every objective takes
#: several write transactions on its way, each waiting for its fsync), so
#: swarmd keeps ``everysec``.
DURABILITY = "appendfsync everysec: nothing lost when redis-server is killed; up to ~2 s on a kernel crash or power cut"
#: Longest unix socket path used (``sun_path`` holds 108 bytes with its NUL on Linux).
MAX_SOCKET_PATH = 100
_MASK = "****"


class RedisUnavailable(Unreachable, RuntimeError):
    """No usable Redis; the message says which URL (password masked) and what to do."""


class UnauthenticatedRedis(RedisUnavailable):
    """The explicit Redis answers without a password and that was not allowed."""


# --------------------------------------------------------------------------- URLs


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``****``; safe to log.

    ``redis://:pw@host:6379/0`` -> ``redis://:****@host:6379/0``;
    ``redis://user:pw@host`` -> ``redis://user:****@host``; a lone userinfo
    (``redis://pw@host``, which some clients read as a password) becomes
    ``****``; a ``password=`` query value is masked too.  Malformed URLs are
    masked conservatively (everything before the last ``@``).
    """
    return _mask(url)[0]


def _mask(url: str) -> tuple[str, bool]:
    """(masked URL, ``True`` if it was malformed and masked conservatively)."""
    url = str(url)
    masked = re.sub(r"(?i)([?&;]password=)[^&;#]*", r"\1" + _MASK, url)
    try:
        parts = urlsplit(masked)
        head = f"{parts.scheme}://" if parts.scheme else ""
        netloc = parts.netloc
        well_formed = masked.startswith(head + netloc) and "@" not in masked[len(head) + len(netloc):]
    except ValueError:
        well_formed = False
    if well_formed:
        if "@" not in netloc:
            return masked, False
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0] + ":" + _MASK if ":" in userinfo else _MASK
        return f"{head}{user}@{host}{masked[len(head) + len(netloc):]}", False
    # e.g. an unescaped "/", "?" or "#" in the password: hide everything up to the last "@".
    start = masked.find("://") + 3 if "://" in masked else 0
    at = masked.rfind("@")
    return (masked, False) if at < start else (masked[:start] + _MASK + masked[at:], True)


def _secrets(url: str) -> set[str]:
    """The password (or lone user name) and ``password=`` values in ``url``, raw and unquoted."""
    found: set[str] = set(re.findall(r"(?i)[?&;]password=([^&;#]+)", url))
    try:
        parts = urlsplit(url)
        secret = parts.password if parts.password is not None else (
            parts.username if "@" in parts.netloc and ":" not in parts.netloc.rsplit("@", 1)[0] else None)
    except ValueError:
        secret = None
    if secret:
        found.add(secret)
    return {s for value in found for s in (value, unquote(value)) if s}


def _describe(exc: BaseException, url: str) -> str:
    """``"Type: message"`` of ``exc`` with any secret of ``url`` masked.

    For a malformed URL (whose secret cannot be located reliably) only the
    exception type is given.
    """
    if _mask(url)[1]:
        return f"{type(exc).__name__}; details hidden because the URL is malformed and may hold a password"
    text = f"{type(exc).__name__}: {exc}"
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def write_url_file(data_dir: Path, url: str) -> Path:
    """Write ``url`` to ``<data_dir>/redis.url`` (mode 0600, atomically); return the path.

    The file may hold a password: it is readable by its owner only.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / URL_FILE
    tmp = path.with_name(f".{URL_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (url.strip() + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read_url_file(data_dir: Path) -> str | None:
    """The URL in ``<data_dir>/redis.url``, or ``None`` if the file is missing, unreadable or empty."""
    try:
        text = (Path(data_dir) / URL_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


# --------------------------------------------------------------------------- probing


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ping(url: str, timeout_s: float) -> None:
    """PING ``url`` once; raise the redis-py exception (or ``ValueError`` for a bad URL)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                  retry_on_timeout=False)
    try:
        client.ping()
    finally:
        client.close()


def requires_auth(url: str, timeout_s: float = 3.0) -> bool:
    """``True`` if the Redis at ``url`` refuses a client that brings no credentials.

    Connects to the same host/port/socket without the URL's user and
    password and sends PING: a ``NOAUTH`` error means the server requires
    AUTH.  Raises the redis-py exception if the server cannot be reached.
    """
    kwargs = redis.connection.parse_url(url)
    for key in ("username", "password"):
        kwargs.pop(key, None)
    kwargs.update(socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    client = redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
    try:
        client.ping()
    except redis.exceptions.AuthenticationError:   # NOAUTH Authentication required
        return True
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "NOPERM" in str(exc):
            return True
        raise
    finally:
        client.close()
    return False


def _answers(url: str, timeout_s: float) -> tuple[bool, str]:
    """(``True``, "") if ``url`` answers PING within ``timeout_s`` seconds, else (``False``, reason)."""
    try:
        _ping(url, timeout_s)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"; reason is reported
        return False, _describe(exc, url)


# --------------------------------------------------------------------------- handle


@dataclass
class RedisHandle:
    """The Redis in use.

    ``url``: its URL (may hold a password: pass it on, never log it -- use
    :func:`mask_url`); ``started``: ``True`` if swarmd started this server
    itself; ``process``: its :class:`subprocess.Popen` (``None`` otherwise);
    ``redis_dir``: where our own server keeps its files (``None`` otherwise).

    :meth:`stop` (also on leaving a ``with`` block) stops a server we started
    and does nothing otherwise.  :meth:`watch` reports our server's death.
    """

    url: str
    started: bool = False
    process: subprocess.Popen | None = None
    redis_dir: Path | None = None
    _log: object = field(default=None, repr=False)
    _stopping: bool = field(default=False, repr=False)

    def watch(self, on_exit, interval_s: float = 1.0) -> None:
        """Call ``on_exit(returncode)`` once, from a daemon thread, if our own
        server exits before :meth:`stop` (killed, crashed, OOM); a no-op for a
        server we did not start.  Checked every ``interval_s`` seconds."""
        proc = self.process
        if not self.started or proc is None:
            return

        def poll() -> None:
            while proc.poll() is None:
                time.sleep(interval_s)
            if not self._stopping:
                on_exit(proc.returncode)

        threading.Thread(target=poll, name="redis-watch", daemon=True).start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop our own server so that it persists: SIGTERM (Redis fsyncs its
        append-only file and exits), wait up to ``timeout_s`` seconds, then
        SIGKILL.  Idempotent; never raises; a no-op for a server we did not start.
        """
        proc = self.process
        if not self.started or proc is None:
            return
        self._stopping = True
        try:
            if proc.poll() is None:
                _terminate(proc, timeout_s)
                logger.info("stopped swarmd's own redis-server (pid {}, exit code {})", proc.pid, proc.returncode)
        except Exception as exc:  # noqa: BLE001 - shutdown must go on
            logger.warning("stopping redis-server (pid {}) failed: {}", proc.pid, exc)
        finally:
            if self._log is not None:
                try:
                    self._log.close()
                except OSError:
                    pass
                self._log = None

    def __enter__(self) -> "RedisHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- ensure_redis


def ensure_redis(url: str | None, data_dir: Path, *, allow_unauthenticated: bool = False,
                 connect_timeout_s: float = 3.0, start_timeout_s: float = 10.0,
                 require_password: bool = True) -> RedisHandle:
    """Return a :class:`RedisHandle` for a Redis that answers PING.

    ``url`` given (the operator configured a Redis): use it; raise
    :class:`RedisUnavailable` (URL masked) if it does not answer PING within
    ``connect_timeout_s`` seconds, and :class:`UnauthenticatedRedis` if it
    answers a client without credentials too, unless ``allow_unauthenticated``.
    ``url`` is ``None``: start ``redis-server`` from ``$PATH`` listening on
    ``<data_dir>/redis/redis.sock`` (directory mode 0700; a free loopback port
    instead when that path is longer than :data:`MAX_SOCKET_PATH`), data and
    log in ``<data_dir>/redis`` (append-only file, fsync every second, no RDB
    snapshots), wait up to ``start_timeout_s`` seconds for PING (longer while
    it is still loading its data), and return ``started=True``.  With
    ``require_password`` our own server gets a random password, which is in
    the returned URL.  A Redis answering on localhost:6379 is never used
    unless it is the ``url`` given.  A relative ``data_dir`` is taken from the
    current directory (the server runs with its own directory as cwd, so it
    is given absolute paths).

    A server we started earlier in ``data_dir`` that is still running (the
    daemon died without stopping it) is stopped first, so two servers never
    share one append-only file.

    The caller writes the URL file (:func:`write_url_file`) and calls
    :meth:`RedisHandle.stop` on exit.  Call from the main thread: our server
    gets SIGTERM if the thread that started it dies.

    Raises :class:`RedisUnavailable` if no Redis can be had: the explicit URL
    does not answer (or needs no password, see above), ``redis-server`` is not
    installed, or it did not start (the message ends with the tail of its log).
    """
    if url:
        ok, reason = _answers(url, connect_timeout_s)
        if not ok:
            raise RedisUnavailable(f"Redis at {mask_url(url)} did not answer PING within "
                                   f"{connect_timeout_s:g} s ({reason}); check that it runs and the URL is right")
        if not requires_auth(url, connect_timeout_s):
            if not allow_unauthenticated:
                raise UnauthenticatedRedis(
                    f"Redis at {mask_url(url)} answers without a password: anyone who can reach it could make "
                    "swarmd's workers run code. Give it a password (requirepass, or an ACL user) and put it in "
                    "the URL (redis://:PASSWORD@host:port/0), or leave the Redis URL unset and swarmd runs its "
                    "own; to use it anyway set daemon.allow_unauthenticated_redis: true in the config")
            logger.warning("using Redis at {} although it needs no password (daemon.allow_unauthenticated_redis)",
                           mask_url(url))
        logger.info("using Redis at {}", mask_url(url))
        return RedisHandle(url=url)
    return _start_own(Path(data_dir).absolute(), start_timeout_s, require_password)


def _start_own(data_dir: Path, timeout_s: float, require_password: bool) -> RedisHandle:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "no Redis URL is configured and redis-server is not installed (not on PATH), so swarmd cannot "
            "run its own; install redis-server (e.g. `apt-get install redis-server`) or give a Redis URL "
            "(--redis-url, $REDIS_URL or daemon.redis_url in the config)")
    redis_dir = data_dir / REDIS_SUBDIR
    redis_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(redis_dir, 0o700)
    _stop_leftover(redis_dir)
    last_error = ""
    for _attempt in range(3):
        handle, last_error, port_taken = _launch(binary, redis_dir, timeout_s, require_password)
        if handle is not None:
            logger.info("swarmd started its own redis-server (pid {}) at {}; data (append-only file) in {}, "
                        "log {}", handle.process.pid, mask_url(handle.url), redis_dir, redis_dir / LOG_NAME)
            return handle
        if not port_taken:
            break
    raise RedisUnavailable(last_error)


def _launch(binary: str, redis_dir: Path, timeout_s: float,
            require_password: bool) -> tuple[RedisHandle | None, str, bool]:
    """Start one server; (handle, "", False) or (None, error message, port-was-taken)."""
    password = secrets.token_hex(24) if require_password else None
    auth = f":{password}@" if password else ""
    sock = (redis_dir / SOCKET_NAME).absolute()
    if len(str(sock).encode()) <= MAX_SOCKET_PATH:
        port, where = 0, str(sock)
        url = f"unix://{auth}{sock}?db=0"
        listen = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    else:   # too long for sun_path: loopback TCP, protected by the password
        port = free_port()
        where = f"127.0.0.1:{port}"
        url = f"redis://{auth}127.0.0.1:{port}/0"
        listen = ["--port", str(port)]
    log_path = redis_dir / LOG_NAME
    cmd = [binary, *(["-"] if password else []),  # "-": more config (the password) on stdin
           "--bind", "127.0.0.1", *listen, "--dir", str(redis_dir),
           "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
           "--daemonize", "no", "--protected-mode", "yes", "--pidfile", str(redis_dir / PID_NAME)]
    log = open(log_path, "ab")
    log_start = log.tell()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if password else subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=redis_dir, start_new_session=True,
                                preexec_fn=_pdeathsig_preexec() if _in_main_thread() else None)
    except OSError as exc:
        log.close()
        return None, f"could not run {binary}: {exc}", False
    if password:
        try:
            proc.stdin.write(f"requirepass {password}\n".encode())
            proc.stdin.close()
        except OSError:
            pass  # it died at once; reported below with its log
    handle = RedisHandle(url=url, started=True, process=proc, redis_dir=redis_dir, _log=log)
    deadline = time.monotonic() + timeout_s
    reason = ""
    while True:
        code = proc.poll()
        if code is not None:
            tail = _log_tail(log_path, log_start)
            handle.stop()
            return None, (f"redis-server exited with code {code} while starting on {where} "
                          f"(dir {redis_dir}); its log ({log_path}) ends:\n{tail}"), port != 0 and "Address already in use" in tail
        try:
            _ping(url, 0.5)
            return handle, "", False
        except redis.exceptions.BusyLoadingError:
            deadline = max(deadline, time.monotonic() + 2.0)  # alive and loading its data: keep waiting
        except Exception as exc:  # noqa: BLE001
            reason = _describe(exc, url)
        if time.monotonic() > deadline:
            handle.stop(timeout_s=5)
            tail = _log_tail(log_path, log_start)
            return None, (f"redis-server on {where} did not answer PING within {timeout_s:g} s "
                          f"({reason}); its log ({log_path}) ends:\n{tail}"), False
        time.sleep(0.05)


def _log_tail(path: Path, start: int, lines: int = 15) -> str:
    """The last ``lines`` lines written to ``path`` after byte ``start``."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


def _terminate(proc: subprocess.Popen | psutil.Process, timeout_s: float) -> None:
    """SIGTERM the redis-server ``proc``, wait up to ``timeout_s`` seconds, then
    SIGKILL it (logged) and wait up to 10 s more.  Raises what ``wait`` raises
    when it is still there after that."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        logger.warning("redis-server (pid {}) did not stop {:g} s after SIGTERM; killing it", proc.pid, timeout_s)
        proc.kill()
        proc.wait(timeout=10)


def _stop_leftover(redis_dir: Path) -> None:
    """Stop a redis-server still running from an earlier start in ``redis_dir``.

    Found through its pidfile (Redis removes it on a clean exit) and checked
    to be a redis-server working in ``redis_dir``, so a reused pid is left alone.
    """
    pidfile = redis_dir / PID_NAME
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        proc = psutil.Process(pid)
        if "redis" not in proc.name() or Path(proc.cwd()).resolve() != redis_dir.resolve():
            return
        logger.warning("a redis-server from an earlier swarmd run (pid {}) still uses {}; stopping it",
                       pid, redis_dir)
        _terminate(proc, 30.0)
    except Exception as exc:  # noqa: BLE001 - gone already, or not ours
        logger.debug("no leftover redis-server from {}: {}", pidfile, exc)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _pdeathsig_preexec():
    """A ``preexec_fn`` that makes Linux SIGTERM the child when the daemon's
    thread that started it dies (``PR_SET_PDEATHSIG``), or ``None`` where that
    is unavailable.  Resolved here, in the parent: the child only makes one call.
    """
    try:
        import ctypes  # lazy: prctl only where a libc is loadable (Linux/glibc)

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except Exception:  # noqa: BLE001 - not Linux/glibc: the leftover check still protects the data
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG

    return preexec
