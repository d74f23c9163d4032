"""A swarmd started as a subprocess by a test or a benchmark, and what it may
leave behind: workers orphaned by a SIGKILLed daemon keep running (they are
in their own sessions), and so may its own redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil


def leftovers(data: Path) -> list[psutil.Process]:
    """Processes of this user still working in ``data`` (a swarmd data
    directory): swarmd workers started with ``--data-dir data``, a
    redis-server whose working directory is under ``data/redis``.  This
    process itself is never listed."""
    mine, found = os.getuid(), []
    for proc in psutil.process_iter(["uids", "cmdline", "cwd"]):
        try:
            if proc.info["uids"] is None or proc.info["uids"].real != mine or proc.pid == os.getpid():
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if f"--data-dir {data}" in cmd or (proc.info["cwd"] or "").startswith(str(data / "redis")):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def kill_leftovers(data: Path, wait_s: float = 10) -> None:
    """SIGKILL every process :func:`leftovers` lists for ``data`` and wait
    up to ``wait_s`` seconds for them to be gone (one already gone is fine)."""
    found = leftovers(data)
    for proc in found:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(found, timeout=wait_s)


def stop_swarmd(proc: subprocess.Popen | None, data: Path, timeout_s: float) -> None:
    """Stop the daemon ``proc`` as systemd would: SIGTERM, up to ``timeout_s``
    seconds for it to exit, then SIGKILL; then :func:`kill_leftovers` in its
    data directory ``data``.  ``proc`` ``None`` or already exited: only the
    leftovers are killed."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    kill_leftovers(data)
