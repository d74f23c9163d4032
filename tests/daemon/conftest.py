"""Fixtures of the daemon tests."""

from __future__ import annotations

import pytest

from swarmd.config import load_config
from swarmd.daemon.service import Daemon
from tests.daemon.helpers import write_config


@pytest.fixture
def daemon(tmp_path, redis_conn):
    """An in-process :class:`Daemon` on the test's real Redis, the echo provider
    as LOCAL_FAST (``write_config``), its store under ``tmp_path / "data"``."""
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    d = Daemon(config, tmp_path / "data", redis_conn)
    yield d
    d.store.close()
