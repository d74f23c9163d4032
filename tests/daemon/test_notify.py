"""systemd notify protocol, checked with a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
import uuid

import pytest

from swarmd.daemon.notify import Notifier


@pytest.fixture
def receiver(monkeypatch):
    """A bound datagram socket at a short filesystem path, announced in $NOTIFY_SOCKET."""
    workdir = tempfile.mkdtemp(prefix="sdn")  # short: AF_UNIX paths are limited to 107 bytes
    path = os.path.join(workdir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
    for name in os.listdir(workdir):
        os.unlink(os.path.join(workdir, name))
    os.rmdir(workdir)


def test_datagrams_arrive_exactly(receiver):
    n = Notifier()
    assert n.ready() is True                     # (a disabled notifier returns False)
    assert receiver.recv(4096) == b"READY=1"
    n.watchdog()
    assert receiver.recv(4096) == b"WATCHDOG=1"
    n.status("queued=3 running=1 spend_today=$0.0042")
    assert receiver.recv(4096) == b"STATUS=queued=3 running=1 spend_today=$0.0042"
    n.stopping()
    assert receiver.recv(4096) == b"STOPPING=1"
    n.close()


def test_status_is_utf8_on_one_line(receiver):
    n = Notifier()
    n.status("naïve → done\nsecond line")
    assert receiver.recv(4096) == "STATUS=naïve → done second line".encode("utf-8")


def test_reloading_carries_monotonic_time(receiver):
    n = Notifier()
    n.reloading()
    data = receiver.recv(4096).decode()
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", data)
    assert m, data
    now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 <= now_usec - int(m.group(1)) < 5_000_000


def test_abstract_socket(monkeypatch):
    name = f"swarmd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        n = Notifier()
        assert n.ready() is True
        assert sock.recv(4096) == b"READY=1"
        n.status("up")
        assert sock.recv(4096) == b"STATUS=up"
    finally:
        sock.close()


def test_noop_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    n = Notifier()
    assert not n.enabled
    assert [n.ready(), n.watchdog(), n.status("x"), n.stopping(), n.reloading()] == [False] * 5
    assert n.watchdog_interval_s() is None


def test_unsupported_address_disables(log_lines):
    n = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled and n.ready() is False
    assert any("unsupported NOTIFY_SOCKET" in line for line in log_lines)


def test_missing_receiver_never_raises(tmp_path, log_lines):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert n.ready() is False
    assert n.watchdog() is False
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "systemd notify" in warnings[0]  # repeats are logged at DEBUG only


def test_recovers_when_receiver_appears(log_lines):
    workdir = tempfile.mkdtemp(prefix="sdn")
    path = os.path.join(workdir, "n.sock")
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.ready() is False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    try:
        assert n.ready() is True
        assert sock.recv(4096) == b"READY=1"
        assert any("works again" in line for line in log_lines)
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(workdir)


@pytest.mark.parametrize("env, expected", [
    ({"WATCHDOG_USEC": "60000000"}, 30.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "1500000"}, 0.75),
    ({}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "me"}, None),
])
def test_watchdog_interval(env, expected):
    n = Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", **env})
    assert n.watchdog_interval_s() == expected


def test_unset_environment_hides_variables_from_children():
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid()), "PATH": "/bin"}
    n = Notifier(env, unset_environment=True)
    assert n.enabled and n.watchdog_interval_s() == 0.5
    assert env == {"PATH": "/bin"}
