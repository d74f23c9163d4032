"""Supervision of local worker processes (``swarmd --workers N``).

Each worker is ``python -m swarmd worker`` in its own process.  A worker
that exits unexpectedly is restarted after a backoff that doubles from 1 s up
to 60 s, and resets after a worker has stayed up for 60 s.  Stopping sends
SIGTERM (RQ's warm shutdown: the current job finishes) and SIGKILL after
``grace_s`` seconds.  A worker gets SIGTERM too when the daemon itself dies,
even by SIGKILL (:data:`swarmd.queue.SUPERVISOR_PID_ENV`).  ``on_exit(worker_name)`` is called as soon as a worker
is seen to have exited unexpectedly (the daemon hands its job back to RQ at
once: :meth:`swarmd.daemon.service.Daemon.worker_died`). :meth:`Supervisor.restart_all` (the daemon's SIGHUP)
restarts every worker the same warm way so it loads the new config.
How many workers by default, and when they oversubscribe the cores:
:func:`default_workers`, :func:`oversubscription`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from loguru import logger

from swarmd.queue import SUPERVISOR_PID_ENV

BACKOFF_START_S, BACKOFF_MAX_S, STABLE_AFTER_S = 1.0, 60.0, 60.0


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask, as ``taskset`` or a
    cpuset leaves it; ``os.cpu_count()`` where there is no mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_worker(config, cores: int) -> int:
    """CPU threads one worker's embedded model spins: ``n_threads`` of the
    first ``llama_cpp`` model of the escalation chain (LOCAL_FAST in the
    shipped config); ``n_threads: null`` means every CPU (``cores``, as
    llama.cpp then takes them); 1 with no ``llama_cpp`` model (a worker then
    waits on the network, not on the CPU)."""
    for tier in config.escalation.chain:
        for model in config.tiers.get(tier, ()):
            if model.provider == "llama_cpp":
                return model.n_threads or cores
    return 1


def default_workers(config, cores: int) -> int:
    """``swarmd``'s worker count when ``--workers`` is not given: ``cores //
    threads_per_worker``, at least 1.  llama.cpp's threads spin, and
    oversubscribed they ran ~10x slower on 2 cores (the ``n_threads`` comment
    of llm_config.yaml), so 2 cores with ``n_threads: 2`` get 1 worker."""
    return max(1, cores // threads_per_worker(config, cores))


def oversubscription(config, workers: int, cores: int) -> str | None:
    """The start-up warning when ``workers x n_threads > cores`` (see
    :func:`default_workers`), naming the numbers and the fix; ``None`` when
    the workers fit the cores."""
    threads = threads_per_worker(config, cores)
    if workers * threads <= cores:
        return None
    return (f"{workers} workers x n_threads {threads} = {workers * threads} threads on {cores} cores: "
            f"oversubscribed, llama.cpp's spinning threads run several times slower; use --workers "
            f"{default_workers(config, cores)} (the default) or lower n_threads in the config")


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_START_S
    restart_at: float = 0.0
    restarts: int = 0
    log: object = field(default=None)
    #: asked to stop by :meth:`Supervisor.restart_all`: respawn at once, no backoff
    reloading: bool = False
    #: the RQ worker name of the current (or last) process
    name: str = ""


class Supervisor:
    """Starts and restarts ``n`` local worker processes.

    ``redis_url``/``config_path``/``data_dir`` (where objective workspaces
    go; ``None``: each worker resolves it, :func:`swarmd.paths.data_dir`) are
    passed to each worker; ``log_dir`` gets one ``worker-<i>.log`` per worker
    (stdout and stderr).
    """

    def __init__(self, n: int, redis_url: str, config_path: str | None, log_dir, grace_s: float = 60.0,
                 data_dir=None, on_exit=None):
        self.redis_url, self.config_path, self.log_dir, self.grace_s = redis_url, config_path, log_dir, grace_s
        self.data_dir = data_dir
        self.on_exit = on_exit
        self.slots = [_Slot(i) for i in range(n)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self, slot: _Slot) -> None:
        # a fresh name per spawn: RQ keeps a crashed worker registered until its TTL
        # ends and refuses a second worker with the same name
        name = slot.name = f"{os.uname().nodename}:w{slot.index}:{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "swarmd", "worker", "--name", name]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        if self.data_dir:
            cmd += ["--data-dir", str(self.data_dir)]
        env = dict(os.environ, REDIS_URL=self.redis_url)  # URL via env, not argv: argv is world-readable
        env[SUPERVISOR_PID_ENV] = str(os.getpid())         # the worker ends when this process dies
        if slot.log is None:
            slot.log = open(os.path.join(self.log_dir, f"worker-{slot.index}.log"), "ab")
        slot.process = subprocess.Popen(cmd, env=env, stdout=slot.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        slot.started_at = time.monotonic()
        logger.info("worker {} started (pid {})", slot.index, slot.process.pid)

    def start(self) -> None:
        """Spawn every worker and the thread that watches them."""
        for slot in self.slots:
            self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for slot in self.slots:
                proc = slot.process
                if proc is not None and proc.poll() is not None:
                    if slot.reloading:      # asked to stop by restart_all: no backoff
                        logger.info("worker {} (pid {}) stopped for the new config; starting it again",
                                    slot.index, proc.pid)
                        slot.process, slot.restart_at, slot.reloading = None, now, False
                        continue
                    if now - slot.started_at >= STABLE_AFTER_S:
                        slot.backoff_s = BACKOFF_START_S
                    logger.warning("worker {} (pid {}) exited with {}; restarting in {:.0f}s",
                                   slot.index, proc.pid, proc.returncode, slot.backoff_s)
                    slot.process, slot.restart_at = None, now + slot.backoff_s
                    slot.backoff_s = min(slot.backoff_s * 2, BACKOFF_MAX_S)
                    slot.restarts += 1
                    if self.on_exit is not None:
                        try:
                            self.on_exit(slot.name)
                        except Exception:   # the periodic reaper still finds its job within ~20 s
                            logger.exception("handing back the job of worker {} failed", slot.name)
                elif proc is None and now >= slot.restart_at and not self._stop.is_set():
                    self._spawn(slot)

    def restart_all(self) -> int:
        """Restart every running worker so it loads the config again (SIGHUP).

        Sends SIGTERM (RQ's warm shutdown: each worker finishes its current
        job first, which may take up to the job timeout); the watcher starts
        each one again as soon as it has exited, without backoff. Returns how
        many workers were asked to restart."""
        asked = 0
        for slot in self.slots:
            proc = slot.process
            if proc is not None and proc.poll() is None and not self._stop.is_set():
                slot.reloading = True
                proc.send_signal(signal.SIGTERM)
                asked += 1
        if asked:
            logger.info("restarting {} worker(s) for the new config (each after its current job)", asked)
        return asked

    def stop(self) -> None:
        """SIGTERM every worker, wait up to ``grace_s`` seconds, then SIGKILL."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        procs = [s.process for s in self.slots if s.process and s.process.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker pid {} did not stop in {:.0f}s; killing it", proc.pid, self.grace_s)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for slot in self.slots:
            if slot.log:
                slot.log.close()
                slot.log = None
