"""Fixtures of the daemon tests."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from swarmd.config import load_config
from swarmd.daemon.service import Daemon
from tests.daemon.helpers import running_daemon, write_config


@pytest.fixture
def daemon(tmp_path, redis_conn):
    """An in-process :class:`Daemon` on the test's real Redis, the echo provider
    as LOCAL_FAST (``write_config``), its store under ``tmp_path / "data"``."""
    config = load_config(write_config(tmp_path, fast_provider="echo"))
    d = Daemon(config, tmp_path / "data", redis_conn)
    yield d
    d.store.close()


@pytest.fixture
def echo_swarmd(tmp_path, redis_url):
    """Start a real ``swarmd`` (:func:`~tests.daemon.helpers.running_daemon`: echo LOCAL_FAST, Ollama
    on a closed port, no API key): call it with ``workers=N`` (default 1) and extra environment;
    it returns the config path.  Stopped at the end of the test."""
    with ExitStack() as stack:
        yield lambda workers=1, **env: stack.enter_context(running_daemon(tmp_path, redis_url, workers, **env))[0]
