"""ensure_redis: an explicit URL (refused without AUTH), swarmd's own redis-server (unix socket,
persisted by AOF), never a Redis merely found on localhost, the URL file, masking."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from swarmd.daemon.redis_server import (
    RedisHandle, RedisUnavailable, UnauthenticatedRedis, ensure_redis, free_port, mask_url, read_url_file,
    requires_auth, write_url_file,
)
from tests.daemon.helpers import write_config
from tests.faults.helpers import Swarmd
from tests.wait import LONG_S, wait_until


def closed_url(password: str | None = None) -> str:
    """A loopback Redis URL on which nothing listens."""
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{free_port()}/0"


@pytest.fixture
def own(tmp_path):
    """Start swarmd's own server in a fresh data dir; always stopped afterwards."""
    handles: list[RedisHandle] = []

    def start(data_dir: Path = tmp_path, **kw) -> RedisHandle:
        handle = ensure_redis(None, data_dir, **kw)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop(timeout_s=5)


def aof_files(data_dir: Path) -> list[Path]:
    redis_dir = data_dir / "redis"
    return [p for p in redis_dir.rglob("appendonly*") if p.is_file()]


# --------------------------------------------------------------------------- mask_url


@pytest.mark.parametrize("url, masked", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
    ("redis://alice:s3cret@redis.lan:6380/2", "redis://alice:****@redis.lan:6380/2"),
    ("rediss://:p%40ss@host/0", "rediss://:****@host/0"),
    ("redis://s3cret@host:6379", "redis://****@host:6379"),
    ("unix://:s3cret@/run/redis.sock?db=0", "unix://:****@/run/redis.sock?db=0"),
    ("redis://host:6379/0?password=s3cret&db=1", "redis://host:6379/0?password=****&db=1"),
    ("redis://:pa/ss@host:6379/0", "redis://****@host:6379/0"),
    ("redis://:pa#ss@host:6379/0", "redis://****@host:6379/0"),
    ("redis://:p@ss@host:6379/0", "redis://:****@host:6379/0"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


# --------------------------------------------------------------------------- URL file


def test_url_file_round_trip(tmp_path):
    assert read_url_file(tmp_path) is None
    url = "redis://:s3cret@127.0.0.1:41234/0"
    path = write_url_file(tmp_path, url)
    assert path == tmp_path / "redis.url"
    assert read_url_file(tmp_path) == url
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_url_file(tmp_path, "redis://127.0.0.1:6379/0")
    assert read_url_file(tmp_path) == "redis://127.0.0.1:6379/0"
    assert [p.name for p in tmp_path.iterdir()] == ["redis.url"]  # no temp file left


def test_url_file_empty_is_none(tmp_path):
    (tmp_path / "redis.url").write_text("\n")
    assert read_url_file(tmp_path) is None


# --------------------------------------------------------------------------- explicit URL


def test_explicit_url_is_used(redis_url, tmp_path):
    with ensure_redis(redis_url, tmp_path) as handle:
        assert (handle.url, handle.started, handle.process) == (redis_url, False, None)
    assert redis.Redis.from_url(redis_url).ping()  # stop() leaves a server we did not start alone
    assert not (tmp_path / "redis").exists()


def test_bad_explicit_url_masks_password(tmp_path, log_lines):
    url = closed_url(password="hunter2-secret")
    t0 = time.monotonic()
    with pytest.raises(RedisUnavailable) as err:
        ensure_redis(url, tmp_path, connect_timeout_s=1)
    assert time.monotonic() - t0 < 20         # gives up after its 1 s connect timeout (margin: a busy machine)
    message = str(err.value)
    assert "hunter2-secret" not in message
    assert mask_url(url) in message and ":****@127.0.0.1" in message
    assert "did not answer PING" in message
    assert not any("hunter2" in line for line in log_lines)


def test_malformed_url_hides_details(tmp_path):
    with pytest.raises(RedisUnavailable) as err:
        ensure_redis("redis://:hunt/er2@127.0.0.1:1/0", tmp_path, connect_timeout_s=1)
    assert "hunt" not in str(err.value) and "er2" not in str(err.value)


def test_explicit_redis_without_password_is_refused(tmp_path, log_lines):
    """A Redis that answers anyone (like Debian's on localhost:6379) is refused unless allowed."""
    with ensure_redis(None, tmp_path, require_password=False) as open_redis:
        assert not requires_auth(open_redis.url)
        with pytest.raises(UnauthenticatedRedis) as err:
            ensure_redis(open_redis.url, tmp_path / "other")
        assert "answers without a password" in str(err.value)
        assert "daemon.allow_unauthenticated_redis: true" in str(err.value)
        allowed = ensure_redis(open_redis.url, tmp_path / "other", allow_unauthenticated=True)
        assert (allowed.url, allowed.started) == (open_redis.url, False)
        assert any("WARNING" in line and "needs no password" in line for line in log_lines)


def test_without_url_starts_its_own_even_if_localhost_answers(own, redis_url):
    handle = own()
    assert handle.started and handle.url.startswith("unix://:") and ":6379" not in handle.url


# --------------------------------------------------------------------------- own server


def test_starts_own_server_and_persists_via_aof(own, tmp_path, log_lines):
    first = own()
    assert first.started and first.process.poll() is None
    sock = tmp_path / "redis" / "redis.sock"
    assert first.url.startswith("unix://:") and first.url.endswith(f"@{sock}?db=0")
    assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    assert requires_auth(first.url)
    client = redis.Redis.from_url(first.url)
    client.set("swarmd:test", "kept")
    client.xadd("swarmd:objectives", {"objective": '{"id": "o1"}'})
    client.close()
    assert aof_files(tmp_path), "no append-only file in the data dir"
    assert any("started its own redis-server" in line and str(tmp_path / "redis") in line for line in log_lines)
    password = first.url.split("@")[0].rsplit(":", 1)[1]
    assert not any(password in line for line in log_lines)

    first.stop()
    assert first.process.returncode == 0  # a clean SIGTERM shutdown, AOF fsynced
    first.stop()  # idempotent

    second = own()
    assert second.url != first.url
    client = redis.Redis.from_url(second.url)
    assert client.get("swarmd:test") == b"kept"
    assert client.xlen("swarmd:objectives") == 1
    client.close()


def test_own_server_needs_its_password(own):
    handle = own()
    bare = "unix://" + handle.url.rsplit("@", 1)[1]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(bare).set("k", "v")
    with pytest.raises(RedisUnavailable):
        ensure_redis(bare, handle.redis_dir.parent, connect_timeout_s=1)


def test_own_server_on_loopback_when_the_socket_path_is_too_long(tmp_path, own):
    data = tmp_path / ("d" * 90)
    handle = own(data)
    assert handle.url.startswith("redis://:") and "@127.0.0.1:" in handle.url
    assert requires_auth(handle.url) and redis.Redis.from_url(handle.url).ping()


def test_own_server_without_password(own):
    handle = own(require_password=False)
    assert "@" not in handle.url
    assert redis.Redis.from_url(handle.url).ping()


def test_password_not_on_command_line(own):
    handle = own()
    password = handle.url.split("@")[0].rsplit(":", 1)[1]
    cmdline = Path(f"/proc/{handle.process.pid}/cmdline").read_bytes()
    assert password.encode() not in cmdline


def test_context_manager_stops_own_server(tmp_path):
    with ensure_redis(None, tmp_path) as handle:
        assert handle.process.poll() is None
    assert handle.process.poll() == 0


def test_leftover_server_is_stopped_before_a_new_start(own, tmp_path):
    """A daemon that died without stop() leaves its server; the next start must not share the AOF with it."""
    orphan = own()
    new = own()
    assert orphan.process.wait(timeout=LONG_S) == 0
    assert redis.Redis.from_url(new.url).ping()


def test_url_file_after_start(own, tmp_path):
    handle = own()
    write_url_file(tmp_path, handle.url)
    assert redis.Redis.from_url(read_url_file(tmp_path)).ping()


# --------------------------------------------------------------------------- failures


def fake_redis_server(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "redis-server"
    exe.write_text(f"#!{sys.executable}\n{script}\n")
    exe.chmod(0o755)


def test_missing_redis_server_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(RedisUnavailable) as err:
        ensure_redis(None, tmp_path)
    assert "apt-get install redis-server" in str(err.value)


def test_server_that_exits_reports_its_log(tmp_path, monkeypatch):
    fake_redis_server(tmp_path / "bin", "import sys; print('FATAL: bad config directive xyz'); sys.exit(1)")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(RedisUnavailable) as err:
        ensure_redis(None, tmp_path / "data")
    assert "exited with code 1" in str(err.value)
    assert "FATAL: bad config directive xyz" in str(err.value)


def test_server_that_never_answers_times_out(tmp_path, monkeypatch):
    fake_redis_server(tmp_path / "bin", "import time; print('starting...', flush=True); time.sleep(60)")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    t0 = time.monotonic()
    with pytest.raises(RedisUnavailable) as err:
        ensure_redis(None, tmp_path / "data", start_timeout_s=1)
    assert time.monotonic() - t0 < 40         # gave up after 1 s, not after the server's 60 s sleep
    assert "did not answer PING within 1 s" in str(err.value) and "starting..." in str(err.value)


def test_stop_kills_a_server_that_ignores_sigterm():
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                             "print('ok', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ok\n"
    handle = RedisHandle(url="redis://127.0.0.1:1/0", started=True, process=proc)
    t0 = time.monotonic()
    handle.stop(timeout_s=0.5)
    assert proc.returncode == -9
    assert time.monotonic() - t0 < 40         # killed after 0.5 s, not after the server's 60 s sleep
    proc.stdout.close()


def test_watch_reports_the_death_of_our_server_not_its_stop(own):
    died: list[int] = []
    killed = own()
    killed.watch(died.append, interval_s=0.05)
    killed.process.kill()
    wait_until(lambda: died, LONG_S, "the watcher's report of the kill")
    assert died == [-9]
    stopped = own()
    before = set(threading.enumerate())
    stopped.watch(died.append, interval_s=0.05)
    (watcher,) = {t for t in threading.enumerate() if t.name == "redis-watch"} - before
    stopped.stop()
    watcher.join(10)                     # it saw the exit and returned, reporting or not
    assert not watcher.is_alive()
    assert died == [-9]


# --------------------------------------------------------------------------- relative data dir


def test_own_server_in_a_relative_data_dir(own, tmp_path, monkeypatch):
    """redis-server runs with its directory as cwd: a relative ``--dir`` would name a directory under itself."""
    monkeypatch.chdir(tmp_path)
    handle = own(Path("rel") / "data")
    assert redis.Redis.from_url(handle.url).ping()
    assert handle.redis_dir == tmp_path / "rel" / "data" / "redis"
    assert aof_files(tmp_path / "rel" / "data"), "no append-only file in the data dir"


def test_swarmd_with_a_relative_data_dir_brings_up_its_own_redis(tmp_path, monkeypatch):
    monkeypatch.delenv("SWARMD_DATA_DIR", raising=False)
    daemon = Swarmd(tmp_path, write_config(tmp_path, fast_provider="echo"), workers=0, data=Path("rel/data"),
                    cwd=tmp_path)
    try:
        daemon.start()          # returns once the heartbeat is in the Redis named by <data>/redis.url
        data = tmp_path / "rel" / "data"
        assert daemon.url().endswith(f"@{data / 'redis' / 'redis.sock'}?db=0")
        assert (data / "memory.db").exists()
    finally:
        daemon.close()
