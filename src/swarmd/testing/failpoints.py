"""Failpoints: named places where a crash-recovery test makes a process die.

Production code calls :func:`failpoint` with the point's name at the place;
it does nothing unless ``$SWARMD_FAILPOINT`` names that point (a test sets
it in the environment of the daemon it starts).  The points:

``after_read``
    :meth:`swarmd.daemon.service.Daemon.handle`, after objectives were read
    from the stream and before they are dispatched (the XACK is not sent).
``after_store``
    :meth:`swarmd.daemon.service.Daemon.admit_batch`, mid-dispatch: the
    objectives are in the store (``queued``) but neither enqueued in RQ nor
    acknowledged in the stream.
``worker_mid_job``
    :func:`swarmd.workers.jobs.run_objective`, as a job starts.
``worker_after_report``
    :func:`swarmd.workers.jobs.run_objective`, once the objective's
    ``finished`` event is written, before RQ records the job as finished
    (``detail``: the objective id).
``worker_mid_batch``
    :meth:`swarmd.workers.context.ContextWorker.execute_job`, in a batch of
    jobs (:mod:`swarmd.workers.batching`) once its first job is completed,
    before the next one runs (``detail``: that next job's id).

A triggered point SIGKILLs its own process, as a crash or an OOM kill would.
With ``$SWARMD_FAILPOINT_MARK`` set to a file path, it triggers once: the
first process to get there writes ``detail`` (e.g. the objective id) to that
file and dies; later ones see the file and go on.  Without it, every pass
triggers.
"""

from __future__ import annotations

import os
import signal

from loguru import logger

#: Environment variable naming the active failpoint.
ENV = "SWARMD_FAILPOINT"
#: Environment variable with the "trigger once" marker file.
MARK_ENV = "SWARMD_FAILPOINT_MARK"
#: Every failpoint production code calls (see the module docstring).
POINTS = ("after_read", "after_store", "worker_mid_job", "worker_after_report", "worker_mid_batch")


def failpoint(name: str, detail: str = "") -> None:
    """SIGKILL this process if ``$SWARMD_FAILPOINT`` is ``name`` (see the
    module docstring); otherwise return at once.  ``name`` must be one of
    :data:`POINTS` (``ValueError`` otherwise, so a typo cannot disable a test)."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
    if os.environ.get(ENV) != name:
        return
    mark = os.environ.get(MARK_ENV)
    if mark:
        if os.path.exists(mark):
            return
        with open(mark, "w") as fh:
            fh.write(detail)
    logger.warning("failpoint {}: killing this process (pid {}) with SIGKILL{}", name, os.getpid(),
                   f" during {detail}" if detail else "")
    os.kill(os.getpid(), signal.SIGKILL)
