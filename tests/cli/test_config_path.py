"""The daemon records the config it loaded in ``<data dir>/config.path`` and
``swarmctl --data-dir DIR`` uses it when given no ``--config`` (nor
``$SWARMD_CONFIG``), from any directory: a real ``swarmd`` writes it, and a
``report`` prices with its API price (7 USD per million input tokens here,
2 in the shipped config)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from swarmd.config import shipped_config_path
from swarmd.paths import read_config_path
from tests.daemon.helpers import daemon_env, write_config
from tests.wait import LONG_S, wait_until

ROOT = Path(__file__).resolve().parents[2]


def api_price(data: Path, cwd: Path, *extra: str, env: dict | None = None) -> float:
    proc = subprocess.run([sys.executable, "-m", "swarmd.cli", "--data-dir", str(data), *extra, "report",
                           "--no-write", "--json"], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env or dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["api_model"]["price_per_mtok_in"]


def test_swarmctl_uses_the_config_the_daemon_recorded(tmp_path, redis_url):
    config = write_config(tmp_path, fast_provider="echo")
    config.write_text(config.read_text().replace("price_per_mtok_in: 2.0", "price_per_mtok_in: 7.0"))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", "0", "--data-dir", str(data),
                             "--config", str(config)], env=daemon_env(redis_url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_until(lambda: read_config_path(data) or proc.poll() is not None, LONG_S, "config.path")
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert read_config_path(data) == str(config.resolve())
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "SWARMD_CONFIG"}
        env["PYTHONPATH"] = str(ROOT / "src")
        assert api_price(data, elsewhere, env=env) == 7.0                      # the daemon's config
        assert api_price(data, elsewhere, "--config", str(shipped_config_path()), env=env) == 2.0   # --config wins
        assert api_price(data, elsewhere, env={**env, "SWARMD_CONFIG": str(shipped_config_path())}) == 2.0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=LONG_S)
    assert proc.returncode == 0
