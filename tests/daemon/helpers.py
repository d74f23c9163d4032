"""Starting and watching a real ``swarmd`` process in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import yaml

from swarmd import constants as K
from swarmd.config import Config, parse_config
from swarmd.objectives import FINAL_STATES
from swarmd.daemon.store import Store
from swarmd.testing import failpoints
from swarmd.testing.configs import with_fast_provider
from swarmd.testing.processes import stop_swarmd
from tests import embedded
from tests.wait import LONG_S, wait_until

ROOT = Path(__file__).resolve().parents[2]
#: The config shipped in the package.
SHIPPED_CONFIG = ROOT / "src" / "swarmd" / "llm_config.yaml"


def shipped_config(env: dict | None = None) -> Config:
    """The shipped config, parsed with ``env`` as its environment (``None``: this process's)."""
    return parse_config(SHIPPED_CONFIG.read_text(), "llm_config.yaml", env=env)


def daemon_env(redis_url: str, **extra: str) -> dict:
    """Environment for a daemon under test: its Redis, no API key, Ollama on a closed loopback port."""
    env = dict(os.environ, REDIS_URL=redis_url, ANTHROPIC_API_KEY="", OLLAMA_HOST="http://127.0.0.1:9",
               PYTHONPATH=str(ROOT / "src"))
    env.pop(failpoints.ENV, None)
    env.pop(failpoints.MARK_ENV, None)
    env.update(extra)
    return env


def write_config(tmp: Path, fast_provider: str = "llama_cpp") -> Path:
    """The shipped config, with LOCAL_FAST switched to ``fast_provider`` (without the embedded
    model's ``quantization``, which another provider refuses), a 1 s heartbeat and the HTTP API on
    a free loopback port."""
    text = SHIPPED_CONFIG.read_text().replace("heartbeat_s: 2.0", "heartbeat_s: 0.5")
    text = text.replace("  listen: 127.0.0.1:8765\n", "  listen: 127.0.0.1:0\n")   # tests run side by side
    if fast_provider != "llama_cpp":
        text = with_fast_provider(text, fast_provider)
    path = tmp / "llm_config.yaml"
    path.write_text(text)
    return path


def start_daemon(tmp: Path, redis_url: str, config: Path, workers: int = 1, **env: str) -> subprocess.Popen:
    """``swarmd --workers N`` as a real process; returns once its heartbeat is in Redis.

    A config with a ``llama_cpp`` tier (the embedded model) needs a test marked ``slow``."""
    tiers = yaml.safe_load(config.read_text())["tiers"]
    if workers and any(m.get("provider") == "llama_cpp" for models in tiers.values() for m in models):
        embedded.require_slow(f"a daemon with workers and a llama_cpp tier in {config.name}")
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", str(workers),
                             "--data-dir", str(data), "--config", str(config)],
                            env=daemon_env(redis_url, **env), stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "swarmd.stderr", "ab"))
    stderr = tmp / "swarmd.stderr"

    def heartbeat() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode}: {stderr.read_text()[-2000:]}")
        return bool(client.exists(K.HEARTBEAT))

    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(heartbeat, LONG_S, lambda: f"the daemon's heartbeat; its stderr: {stderr.read_text()[-2000:]}")
    except BaseException:
        proc.kill()          # never leave a half-started daemon behind a failed test
        proc.wait()
        raise
    finally:
        client.close()
    return proc


@contextmanager
def running_daemon(tmp: Path, redis_url: str, workers: int = 1, fast_provider: str = "echo",
                   **env: str) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A real ``swarmd`` on :func:`write_config` with LOCAL_FAST ``fast_provider`` (default echo: no
    model file) and :func:`daemon_env` (no Ollama, no API key) plus ``env``: yields ``(config path,
    process)``, then stops it (:func:`~swarmd.testing.processes.stop_swarmd`: SIGTERM, ``LONG_S`` s, SIGKILL)."""
    config = write_config(tmp, fast_provider=fast_provider)
    proc = start_daemon(tmp, redis_url, config, workers=workers, **env)
    try:
        yield config, proc
    finally:
        stop_swarmd(proc, tmp / "data", LONG_S)


def wait_final(store_path: Path, ids: list[str], timeout_s: float = LONG_S) -> dict[str, dict]:
    """Poll the store until every id is in a final state; return the records."""
    records: dict[str, dict | None] = {}

    def all_final() -> bool:
        if not store_path.exists():
            return False
        store = Store(store_path)
        try:
            records.update({i: store.get(i) for i in ids})
        finally:
            store.close()
        return all(r and r["state"] in FINAL_STATES for r in records.values())

    wait_until(all_final, timeout_s, lambda: "final states of " + ", ".join(
        f"{i} ({(records.get(i) or {}).get('state')})" for i in ids
        if not records.get(i) or records[i]["state"] not in FINAL_STATES), interval=0.3)
    return records


def redis_state(client, objective_id: str) -> dict[str, str]:
    """The objective's Redis state hash (:func:`swarmd.constants.objective_key`), decoded."""
    return {k.decode(): v.decode() for k, v in client.hgetall(K.objective_key(objective_id)).items()}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def swarmctl_run(monkeypatch, capsys, redis_url: str, config: Path, *argv: str) -> tuple[int, object]:
    """``swarmctl --config CONFIG ARGV...`` in this process with the daemon's environment
    (:func:`daemon_env`); returns (exit code, captured ``out``/``err``)."""
    from swarmd.cli import swarmctl
    for key, value in daemon_env(redis_url).items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = swarmctl.main(["--config", str(config), *argv])
    return code, capsys.readouterr()
