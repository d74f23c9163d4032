"""`swarmd worker` honours the flags its --help lists."""

from __future__ import annotations

import os

from swarmd.daemon.main import main


def test_worker_data_dir_flag_is_where_its_workspaces_go(tmp_path, monkeypatch):
    seen = {}

    def fake_run_worker(url, config, burst=False):       # the worker loop itself is tested end to end
        seen.update(url=url, data_dir=os.environ.get("SWARMD_DATA_DIR"), burst=burst)
        return 0

    monkeypatch.setattr("swarmd.workers.main.run_worker", fake_run_worker)
    monkeypatch.setenv("SWARMD_DATA_DIR", "/nonexistent/before")        # restored after the test
    code = main(["worker", "--burst", "--redis-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path / "d")])
    assert code == 0
    assert seen == {"url": "redis://127.0.0.1:1/0", "data_dir": str(tmp_path / "d"), "burst": True}
