"""A real ``swarmd`` (echo LOCAL_FAST) with its HTTP API, and httpx clients of it.

The daemon gets a planted Anthropic API key (its base URL a closed loopback
port: nothing leaves the machine) and the suite's Redis with its password, so
tests can look for both in every response (:data:`Swarm.secrets`).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.daemon.helpers import daemon_env, start_daemon, write_config
from tests.wait import wait_until

#: The Anthropic API key planted in the daemon's environment.
PLANTED_KEY = "sk-ant-api03-" + secrets.token_hex(24)


@dataclass
class Swarm:
    """One running daemon: ``url`` (from ``api.url``), ``token``, ``data`` dir,
    ``config`` path, ``redis_url``, ``proc``; :meth:`client` an authorised httpx client."""

    url: str
    token: str
    data: Path
    config: Path
    redis_url: str
    proc: subprocess.Popen

    def client(self, token: str | None = "own", **kwargs) -> httpx.Client:
        """An httpx client of the API with ``token`` (``"own"``: the daemon's; ``None``: no header)."""
        headers = {} if token is None else {"Authorization": f"Bearer {self.token if token == 'own' else token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    @property
    def secrets(self) -> list[str]:
        """Strings no response may contain: the API key, the Redis password, the token."""
        password = self.redis_url.split("://:", 1)[1].split("@", 1)[0]
        return [PLANTED_KEY, password, self.token]

    def burst_worker(self) -> None:
        """``swarmd worker --burst``: runs every queued job, then exits."""
        subprocess.run([sys.executable, "-m", "swarmd", "worker", "--burst", "--data-dir", str(self.data),
                        "--config", str(self.config)], env=daemon_env(self.redis_url), check=True, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _start(tmp_path, redis_url, workers: int) -> Swarm:
    config = write_config(tmp_path, fast_provider="echo")
    proc = start_daemon(tmp_path, redis_url, config, workers=workers, ANTHROPIC_API_KEY=PLANTED_KEY,
                        ANTHROPIC_BASE_URL="http://127.0.0.1:9")
    data = tmp_path / "data"
    url = wait_until(lambda: (data / "api.url").exists() and (data / "api.url").read_text().strip(), 60,
                     "api.url written by the daemon")
    return Swarm(url, (data / "api.token").read_text().strip(), data, config, redis_url, proc)


def _stop(swarm: Swarm) -> None:
    """SIGTERM the daemon; one that has not exited within 120 s is killed and the test fails with its log's tail."""
    swarm.proc.terminate()
    try:
        swarm.proc.wait(120)
    except subprocess.TimeoutExpired:
        swarm.proc.kill()
        swarm.proc.wait()
        log = (swarm.data.parent / "swarmd.stderr").read_text()[-3000:]
        raise AssertionError(f"swarmd did not stop within 120 s of SIGTERM; its stderr ends:\n{log}") from None


@pytest.fixture
def swarm(tmp_path, redis_url):
    """A daemon with one worker."""
    s = _start(tmp_path, redis_url, workers=1)
    yield s
    _stop(s)


@pytest.fixture
def idle_swarm(tmp_path, redis_url):
    """A daemon with no worker: objectives stay queued until :meth:`Swarm.burst_worker`."""
    s = _start(tmp_path, redis_url, workers=0)
    yield s
    _stop(s)
