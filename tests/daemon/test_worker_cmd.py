"""`swarmd worker` honours the flags its --help lists and finds Redis in the documented order."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from swarmd.cli import daemon as swarmd_cli
from swarmd.daemon.redis_server import write_url_file
from tests.daemon.helpers import ROOT


@pytest.fixture
def worker_calls(monkeypatch):
    """Replaces the worker loop (tested end to end by the daemon tests) with a recorder."""
    calls = []

    def fake_run_worker(url, config, burst=False, name=None, data_dir=None):
        calls.append({"url": url, "data_dir": data_dir, "burst": burst, "name": name})
        return 0

    monkeypatch.setattr(swarmd_cli, "run_worker", fake_run_worker)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return calls


def test_worker_data_dir_flag_is_where_its_workspaces_go(redis_url, worker_calls, tmp_path):
    before = dict(os.environ)
    code = swarmd_cli.main(["worker", "--burst", "--name", "w1", "--redis-url", redis_url,
                            "--data-dir", str(tmp_path / "d")])
    assert code == 0
    assert worker_calls == [{"url": redis_url, "data_dir": str(tmp_path / "d"), "burst": True, "name": "w1"}]
    assert dict(os.environ) == before          # passed explicitly, not through the environment


def test_worker_finds_the_daemons_redis_through_its_data_dir(redis_url, worker_calls, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    write_url_file(data, redis_url)
    assert swarmd_cli.main(["worker", "--data-dir", str(data)]) == 0
    assert worker_calls[0]["url"] == redis_url


def test_worker_with_unreachable_redis_exits_3_without_loading_anything():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), REDIS_URL="redis://:hunter2@127.0.0.1:9/0")
    proc = subprocess.run([sys.executable, "-m", "swarmd", "worker", "--burst"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "127.0.0.1:9" in proc.stderr and "hunter2" not in proc.stderr


def test_negative_workers_is_bad_input(capsys):
    assert swarmd_cli.main(["--workers", "-1"]) == 2
    assert "--workers must be >= 0" in capsys.readouterr().err
