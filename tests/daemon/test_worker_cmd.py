"""`swarmd worker` honours the flags its --help lists."""

from __future__ import annotations

import os

from swarmd.daemon.main import main


def test_worker_data_dir_flag_is_where_its_workspaces_go(tmp_path, monkeypatch):
    seen = {}

    def fake_run_worker(url, config, burst=False, data_dir=None):   # the worker loop itself is tested end to end
        seen.update(url=url, data_dir=data_dir, burst=burst)
        return 0

    monkeypatch.setattr("swarmd.workers.main.run_worker", fake_run_worker)
    before = dict(os.environ)
    code = main(["worker", "--burst", "--redis-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path / "d")])
    assert code == 0
    assert seen == {"url": "redis://127.0.0.1:1/0", "data_dir": str(tmp_path / "d"), "burst": True}
    assert dict(os.environ) == before          # passed explicitly, not through the environment
