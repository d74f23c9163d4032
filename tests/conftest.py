"""Shared fixtures: a real ``redis-server`` on loopback for the whole session.

``redis_server`` (session): URL of a throwaway server on a free 127.0.0.1 port,
with a password (``redis://:PASSWORD@127.0.0.1:PORT/0``: swarmd refuses a
Redis that answers without one);
``redis_url`` (function): the same URL, after ``FLUSHALL``;
``redis_conn`` (function): a ``redis.Redis`` client on that flushed server;
``log_lines`` (function): every loguru message during the test, as ``"LEVEL message"``.

Only tests marked ``slow`` may load the embedded model (see tests/embedded.py):
any other test that loads it (itself or through a fixture) fails.

Every test must leave ``os.environ`` as it found it (``monkeypatch.setenv``
does; code under test that writes the environment, like a ``Daemon`` started
in-process, must be undone by the test): an autouse check fails the test
otherwise, and restores the environment so later tests do not inherit it.

The suite installs nothing: ``redis-server`` must be on PATH (the README's
test command, ``bash scripts/test.sh``, installs it through scripts/bootstrap.sh).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from loguru import logger

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so `from tests.fakes import ...` works
    sys.path.insert(0, str(ROOT))

from tests import embedded  # noqa: E402  (needs ROOT on sys.path)
from tests.wait import wait_until  # noqa: E402
from tests.wait import LONG_S


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """URL (``redis://:PASSWORD@127.0.0.1:PORT/0``) of a redis-server started for this session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH; the README's test command (`bash scripts/test.sh`) "
                    "installs it (scripts/bootstrap.sh runs `apt-get install redis-server`)", pytrace=False)
    workdir = tmp_path_factory.mktemp("redis")
    log = open(workdir / "redis-server.log", "wb")
    proc = None
    password = secrets.token_hex(16)
    for _attempt in range(3):  # the port can be taken between picking and binding it
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "-", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
        proc.stdin.write(f"requirepass {password}\n".encode())   # "-": config on stdin, not in ps
        proc.stdin.close()
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)

        def state() -> str | None:
            if proc.poll() is not None:
                return "exited"
            try:
                return "up" if client.ping() else None
            except redis.ConnectionError:
                return None

        try:
            started = wait_until(state, LONG_S, "redis-server to answer PING")
        except AssertionError:
            started = "silent"
        client.close()
        if started == "up":
            break
        proc.kill()
        proc.wait()
    else:
        log.close()
        pytest.fail(f"redis-server did not start; see {workdir / 'redis-server.log'}", pytrace=False)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=LONG_S)
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


def _environment() -> dict[str, str]:
    """``os.environ`` without PYTEST_CURRENT_TEST (pytest itself sets it for each phase)."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.fixture(autouse=True)
def _environment_unchanged():
    """Fail a test that leaves ``os.environ`` different from how it found it (then restore it).

    Autouse, so it is set up before and torn down after the test's own
    fixtures: a ``monkeypatch`` undo counts as leaving it unchanged.
    """
    before = _environment()
    yield
    after = _environment()
    if after != before:
        for key in after.keys() - before.keys():
            del os.environ[key]
        os.environ.update(before)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        pytest.fail(f"the test changed os.environ and did not restore it: {', '.join(changed)} "
                    "(use monkeypatch.setenv, or undo what the code under test wrote)", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before a test's fixtures (module- and session-scoped ones included) are set
    up: may they and the test load the embedded model?  Only when marked ``slow``."""
    embedded.allowed = item.get_closest_marker("slow") is not None


@pytest.fixture(scope="session", autouse=True)
def _embedded_model_only_when_slow():
    """Loading the embedded model in this process fails a test not marked ``slow``."""
    from swarmd.router.providers import llama_cpp

    real = llama_cpp.load_llama

    def guarded(*args, **kwargs):
        embedded.require_slow("this test")
        return real(*args, **kwargs)

    llama_cpp.load_llama = guarded
    try:
        yield
    finally:
        llama_cpp.load_llama = real
