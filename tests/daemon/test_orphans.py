"""A daemon SIGKILLed outside systemd leaves no orphan workers (PR_SET_PDEATHSIG).

Before, ``swarmd --workers N`` started its workers in their own sessions and
nothing ended them when the daemon died: a restarted daemon then ran 2N workers.
The echo provider: no model is loaded.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

from swarmd.workers.main import end_with_supervisor
from tests.daemon.helpers import start_daemon, write_config
from tests.wait import LONG_S, wait_until


def test_workers_end_when_their_daemon_is_sigkilled(tmp_path, redis_url):
    config = write_config(tmp_path, fast_provider="echo")
    daemon = start_daemon(tmp_path, redis_url, config, workers=2)
    try:
        workers: list[psutil.Process] = []

        def two_workers() -> bool:
            workers[:] = [p for p in psutil.Process(daemon.pid).children() if "worker" in " ".join(p.cmdline())]
            return len(workers) == 2

        wait_until(two_workers, LONG_S, "the daemon's two workers")
        # the workers stay up while the daemon lives (the signal is tied to it, not to a passing thread)
        assert all(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    wait_until(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), LONG_S,
               lambda: f"workers {[w.pid for w in workers]} to end after their daemon was SIGKILLed")


def test_a_worker_started_without_a_supervisor_is_left_alone():
    assert end_with_supervisor({}) is False


def test_a_worker_whose_daemon_is_already_gone_exits():
    # in a child process: arming the signal in pytest itself would tie pytest to its parent
    code = ("import os, sys; from swarmd.workers.main import SUPERVISOR_PID_ENV, end_with_supervisor\n"
            "end_with_supervisor({SUPERVISOR_PID_ENV: str(os.getppid() + 1_000_000)})\n"
            "sys.exit(7)")      # not reached: the worker exits 0 at once
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "is gone; exiting" in r.stderr
