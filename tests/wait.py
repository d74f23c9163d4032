"""Polling with a deadline: what tests use instead of a fixed sleep before an assertion.

A fixed sleep is either too short on a loaded machine (a flaky failure) or
longer than needed everywhere else; :func:`wait_until` returns as soon as
the awaited state is there and fails with a message naming it otherwise.
Deadlines are long (:data:`LONG_S`): a deadline is never a speed target
(those live in bench/), only the point where waiting longer is pointless.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

#: Seconds every test waits at most for a state a quiet machine reaches in a few (a daemon's
#: heartbeat, a worker restarted, objectives final, a process exited): long enough for these 2
#: cores with two busy loops beside the suite (issue 22: a 60 s wait for a worker restarted after
#: SIGHUP failed 2 runs in 5 at load 2-4), and free when the state comes, since :func:`wait_until`
#: returns at once.  pyproject's per-test timeout leaves room for several such waits.
LONG_S = 300.0


def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str],
               interval: float = 0.05) -> T:
    """Call ``predicate()`` until it returns a truthy value, and return that value.

    ``timeout``: seconds (monotonic clock) before giving up; the predicate is
    called once more after the deadline, so a state reached during the last
    interval still counts.  ``what``: the awaited state, for the failure
    message; a callable is called once, on failure, to describe the last state
    seen (e.g. the tail of a log).  ``interval``: seconds between calls.
    Exceptions raised by ``predicate`` propagate at once (e.g. a process that
    died).  Raises ``AssertionError`` ("timed out after N s waiting for WHAT")
    when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        last_call = time.monotonic() >= deadline
        value = predicate()
        if value:
            return value
        if last_call:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
