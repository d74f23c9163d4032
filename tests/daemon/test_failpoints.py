"""The failpoint hook (:mod:`swarmd.testing.failpoints`): inert unless named,
once per marker file, and loud about unknown names.  Real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from swarmd.testing import failpoints
from tests.daemon.helpers import daemon_env

_CALL = "from swarmd.testing.failpoints import failpoint; failpoint('after_read', 'obj-1'); print('survived')"


def _run(**env: str) -> subprocess.CompletedProcess:
    full = dict(daemon_env("redis://127.0.0.1:9/0"), **env)
    return subprocess.run([sys.executable, "-c", _CALL], env=full, capture_output=True, text=True, timeout=60)


def test_an_unnamed_failpoint_does_nothing():
    done = _run(SWARMD_FAILPOINT="worker_mid_job")
    assert done.returncode == 0 and done.stdout.strip() == "survived"


def test_a_named_failpoint_kills_its_process_once_per_marker(tmp_path):
    mark = tmp_path / "mark"
    first = _run(SWARMD_FAILPOINT="after_read", SWARMD_FAILPOINT_MARK=str(mark))
    assert first.returncode == -signal.SIGKILL and first.stdout == ""
    assert mark.read_text() == "obj-1"
    second = _run(SWARMD_FAILPOINT="after_read", SWARMD_FAILPOINT_MARK=str(mark))
    assert second.returncode == 0 and second.stdout.strip() == "survived"


def test_an_unknown_failpoint_name_is_an_error():
    with pytest.raises(ValueError, match="unknown failpoint 'after_reed'"):
        failpoints.failpoint("after_reed")
