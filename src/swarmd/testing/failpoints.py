"""Failpoints: named places where a crash-recovery test makes a process die.

Production code calls :func:`failpoint` with the point's name; it does nothing unless
``$SWARMD_FAILPOINT`` names that point.  The points (:data:`POINTS`): ``after_read`` (the
daemon read objectives, before dispatch), ``after_store`` (stored ``queued``, neither enqueued
nor acknowledged), ``worker_mid_job`` (a job starts), ``worker_after_report`` (the
``finished`` event written, before RQ records the job), ``worker_mid_batch`` (a batch's first
job completed, before the next).  A triggered point SIGKILLs its own process.  With
``$SWARMD_FAILPOINT_MARK`` set to a file path it triggers once: the first process there writes
``detail`` to the file and dies; later ones go on.  Where each point is: docs/design.md.
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
