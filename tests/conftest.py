"""Shared fixtures: a real ``redis-server`` on loopback for the whole session.

``redis_server`` (session): URL of a throwaway server on a free 127.0.0.1 port;
``redis_url`` (function): the same URL, after ``FLUSHALL``;
``redis_conn`` (function): a ``redis.Redis`` client on that flushed server;
``log_lines`` (function): every loguru message during the test, as ``"LEVEL message"``.

The suite installs nothing: ``redis-server`` must be on PATH (the README's
test command, ``bash scripts/test.sh``, installs it through scripts/bootstrap.sh).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from loguru import logger

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so `from tests.fakes import ...` works
    sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """URL (``redis://127.0.0.1:PORT/0``) of a redis-server started for this session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH; the README's test command (`bash scripts/test.sh`) "
                    "installs it (scripts/bootstrap.sh runs `apt-get install redis-server`)", pytrace=False)
    workdir = tmp_path_factory.mktemp("redis")
    log = open(workdir / "redis-server.log", "wb")
    proc = None
    for _attempt in range(3):  # the port can be taken between picking and binding it
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            proc.kill()
            proc.wait()
            continue
        client.close()
        break
    else:
        log.close()
        pytest.fail(f"redis-server did not start; see {workdir / 'redis-server.log'}", pytrace=False)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def redis_url(redis_server):
    """The session server's URL, emptied (``FLUSHALL``) for this test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def redis_conn(redis_url):
    """A ``redis.Redis`` client (bytes replies) on the emptied session server."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def log_lines():
    """Every loguru message emitted during the test (all levels), as ``"LEVEL message"`` strings."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).rstrip("\n")), level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)
