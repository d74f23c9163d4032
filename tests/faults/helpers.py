"""Fault injection helpers: real swarmd processes, a redis-server a test may
kill, and the checks every fault test ends with (each objective final, each
finished exactly once, nothing left pending).

LOCAL_FAST is ``provider: echo`` everywhere here (no model is loaded), so
the time of each test goes to the fault and the recovery, not to inference.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import redis

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.daemon.redis_server import free_port
from swarmd.testing.processes import stop_swarmd
from tests.daemon.helpers import daemon_env, write_config, write_jsonl
from tests.wait import LONG_S, wait_until

__all__ = ["RedisProcess", "Swarmd", "echo_config", "rows", "finished_counts", "swarmctl", "write_jsonl"]


def echo_config(tmp: Path, **replace: str) -> Path:
    """The shipped config with LOCAL_FAST on the echo provider, a 0.5 s
    heartbeat and job retries after 1 s; ``replace``: more ``old=new`` text
    replacements (keys are only labels)."""
    path = write_config(tmp, fast_provider="echo")
    text = path.read_text().replace("retry_intervals_s: [5, 30]", "retry_intervals_s: [1, 1]")
    for old, new in replace.values():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


def rows(prefix: str, n: int) -> list[dict]:
    """``n`` classify objectives ``<prefix>-<i>`` (the echo provider answers ``feat``)."""
    return [{"id": f"{prefix}-{i}", "action": "classify", "input": f"message {i}", "labels": "feat,fix"}
            for i in range(n)]


def finished_counts(client: redis.Redis) -> Counter:
    """How many ``finished`` events each objective id has in the event stream."""
    return Counter(f[b"id"].decode() for _i, f in client.xrange(Q.EVENT_STREAM) if f.get(b"kind") == b"finished")


def swarmctl(*argv: str, redis_url: str | None = None, data_dir: Path | None = None,
             timeout: float = LONG_S) -> subprocess.CompletedProcess:
    """``swarmctl ARGV`` as its own process (exit code, stdout, stderr as text)."""
    env = daemon_env(redis_url or "")
    if not redis_url:
        env.pop("REDIS_URL")
    cmd = [sys.executable, "-m", "swarmd.cli", *argv]
    if data_dir is not None:
        cmd[3:3] = ["--data-dir", str(data_dir)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


class RedisProcess:
    """A redis-server on a fixed loopback port with a password and an
    append-only file (``appendfsync everysec``, as swarmd's own), which a test
    may stop and start again at the same URL."""

    def __init__(self, workdir: Path):
        self.workdir, self.port, self.password = workdir, free_port(), secrets.token_hex(16)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.log = open(workdir / "redis-server.log", "ab")

    def start(self) -> None:
        """Start it and wait until it answers PING (10 s)."""
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "-", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.workdir), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--daemonize", "no"], stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)
        self.proc.stdin.write(f"requirepass {self.password}\n".encode())
        self.proc.stdin.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def up() -> bool:
            assert self.proc.poll() is None, f"redis-server exited: {(self.workdir / 'redis-server.log').read_text()}"
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(up, LONG_S, "the test's redis-server to answer PING")
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it with ``sig`` and wait for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=LONG_S)

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        self.log.close()


class Swarmd:
    """``swarmd --workers N`` as a real process over ``data`` (a directory).

    ``redis_url`` ``None``: the daemon starts its own redis-server (found
    through ``<data>/redis.url``).  ``env``: extra environment (failpoints).
    :meth:`close` stops it (SIGTERM, then SIGKILL) and kills whatever process
    it left behind that works in ``data`` (workers orphaned by a SIGKILLed
    daemon keep running: they are in their own sessions).  ``cwd``: the
    daemon's working directory; a relative ``data`` is passed as given
    (``--data-dir rel``) and read here under ``cwd``.
    """

    def __init__(self, tmp: Path, config: Path, workers: int = 1, redis_url: str | None = None,
                 data: Path | None = None, cwd: Path | None = None, **env: str):
        self.tmp, self.config, self.workers, self.redis_url, self.cwd = tmp, config, workers, redis_url, cwd
        self.data_arg = data or tmp / "data"
        self.data = (cwd or Path.cwd()) / self.data_arg
        self.data.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.stderr = tmp / "swarmd.stderr"

    @property
    def log(self) -> str:
        """The daemon log so far (``daemon_hybrid.log`` in the data dir)."""
        path = self.data / "daemon_hybrid.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self) -> str:
        """The Redis URL in use (the own server's from ``redis.url``)."""
        return self.redis_url or (self.data / "redis.url").read_text().strip()

    def start(self, timeout: float = LONG_S) -> "Swarmd":
        """Start it; returns once its heartbeat is in Redis."""
        env = daemon_env(self.redis_url or "", **self.env)
        if not self.redis_url:
            env.pop("REDIS_URL")
            (self.data / "redis.url").unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", str(self.workers),
                                      "--data-dir", str(self.data_arg), "--config", str(self.config)],
                                     env=env, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=open(self.stderr, "ab"))

        def heartbeat() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"swarmd exited with {self.proc.returncode}: {self.stderr.read_text()[-2000:]}")
            if not self.redis_url and not (self.data / "redis.url").exists():
                return False
            client = redis.Redis.from_url(self.url(), socket_connect_timeout=1)
            try:
                return bool(client.exists(K.HEARTBEAT))
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_until(heartbeat, timeout, lambda: f"swarmd's heartbeat; stderr: {self.stderr.read_text()[-2000:]}",
                   interval=0.1)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url())

    def submit(self, objectives: list[dict], name: str = "batch") -> None:
        """``swarmctl submit --file`` (must exit 0)."""
        path = write_jsonl(self.tmp / f"{name}.jsonl", objectives)
        done = swarmctl("--config", str(self.config), "submit", "--file", str(path), redis_url=self.redis_url,
                        data_dir=self.data)
        assert done.returncode == 0, done.stderr

    def kill(self) -> None:
        """SIGKILL the daemon process alone (its workers and redis-server are left as they are)."""
        self.proc.kill()
        self.proc.wait(timeout=LONG_S)

    def close(self) -> None:
        stop_swarmd(self.proc, self.data, timeout_s=LONG_S)
