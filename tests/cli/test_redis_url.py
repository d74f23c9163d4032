"""The one Redis URL resolution order (``swarmd.cli.common.redis_url``):
--redis-url, $REDIS_URL, <data dir>/redis.url (not for the daemon), the
config's daemon.redis_url; with none of these the daemon gets None (it starts
its own) and every other command exits 3; a Redis on localhost is never assumed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from swarmd.cli.common import redis_url
from swarmd.daemon.redis_server import write_url_file
from swarmd.errors import Unreachable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """(args with every source set, data dir): flag, env, url file, config each name a different URL."""
    data = tmp_path / "data"
    data.mkdir()
    write_url_file(data, "redis://file:6379/0")
    config = tmp_path / "cfg.yaml"
    config.write_text((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text().replace("  redis_url: null", "  redis_url: redis://config:6379/0"))
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    return argparse.Namespace(redis_url="redis://flag:6379/0", data_dir=str(data), config=str(config)), data


def test_each_source_wins_over_the_ones_after_it(setup, monkeypatch):
    args, data = setup
    assert redis_url(args) == "redis://flag:6379/0"
    args.redis_url = None
    assert redis_url(args) == "redis://env:6379/0"
    monkeypatch.delenv("REDIS_URL")
    assert redis_url(args) == "redis://file:6379/0"
    (data / "redis.url").unlink()
    assert redis_url(args) == "redis://config:6379/0"
    args.config = str(ROOT / "src" / "swarmd" / "llm_config.yaml")                 # redis_url: null
    with pytest.raises(Unreachable, match="no Redis known") as info:
        redis_url(args)
    assert info.value.exit_code == 3 and str(data) in str(info.value)


def test_the_daemon_skips_the_file_it_writes_and_may_start_its_own(setup, monkeypatch):
    args, _data = setup
    args.redis_url = None
    monkeypatch.delenv("REDIS_URL")
    assert redis_url(args, daemon=True) == "redis://config:6379/0"
    args.config = str(ROOT / "src" / "swarmd" / "llm_config.yaml")
    assert redis_url(args, daemon=True) is None
