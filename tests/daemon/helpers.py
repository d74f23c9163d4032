"""Starting and watching a real ``swarmd`` process in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from swarmd import constants as K
from swarmd.objectives import FINAL_STATES
from swarmd.store.objectives import Store

ROOT = Path(__file__).resolve().parents[2]


def daemon_env(redis_url: str, **extra: str) -> dict:
    """Environment for a daemon under test: its Redis, no API key, Ollama on a closed loopback port."""
    env = dict(os.environ, REDIS_URL=redis_url, ANTHROPIC_API_KEY="", OLLAMA_HOST="http://127.0.0.1:9",
               PYTHONPATH=str(ROOT / "src"))
    env.pop("SWARMD_FAILPOINT", None)
    env.update(extra)
    return env


def write_config(tmp: Path, fast_provider: str = "llama_cpp") -> Path:
    """The shipped config, with LOCAL_FAST switched to ``fast_provider`` and a 1 s heartbeat."""
    text = (ROOT / "llm_config.yaml").read_text().replace("heartbeat_s: 2.0", "heartbeat_s: 0.5")
    if fast_provider != "llama_cpp":
        text = text.replace("    - provider: llama_cpp\n", f"    - provider: {fast_provider}\n")
    path = tmp / "llm_config.yaml"
    path.write_text(text)
    return path


def start_daemon(tmp: Path, redis_url: str, config: Path, workers: int = 1, **env: str) -> subprocess.Popen:
    """``swarmd --workers N`` as a real process; returns once its heartbeat is in Redis."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "swarmd.daemon.main", "--workers", str(workers),
                             "--data-dir", str(data), "--config", str(config)],
                            env=daemon_env(redis_url, **env), stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "swarmd.stderr", "ab"))
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if client.exists(K.HEARTBEAT):
            return proc
        time.sleep(0.1)
    raise AssertionError(f"daemon did not start: {(tmp / 'swarmd.stderr').read_text()[-2000:]}")


def wait_final(store_path: Path, ids: list[str], timeout_s: float = 240) -> dict[str, dict]:
    """Poll the store until every id is in a final state; return the records."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if store_path.exists():
            store = Store(store_path)
            records = {i: store.get(i) for i in ids}
            store.close()
            if all(r and r["state"] in FINAL_STATES for r in records.values()):
                return records
        time.sleep(0.3)
    raise AssertionError(f"not final in {timeout_s}s: {[i for i, r in records.items() if not r or r['state'] not in FINAL_STATES]}")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
