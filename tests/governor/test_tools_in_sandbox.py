"""Every tool runs inside the sandbox (issue 21, deliverable 2): ``read_file`` and ``write_file``
run in bubblewrap (the worker never opens a path the agent chose), anything but a regular file
is refused with a reason, every call has a timeout; the fetch side of ``http_get`` (TLS, HTTP)
runs in bubblewrap on a connection the worker checked and pinned."""

from __future__ import annotations

import os
import socket

import pytest

from swarmd.governor import Governor
from swarmd.governor import execute as execute_mod
from swarmd.governor.execute import run_tool
from swarmd.governor.sandbox import probe

from .conftest import make_workspace, table_resolver


@pytest.fixture()
def ws(tmp_path):
    if not probe().available:
        pytest.skip("bwrap not usable here")
    return str(make_workspace(tmp_path))


@pytest.mark.parametrize("tool", ["read_file", "write_file"])
def test_fifo_is_refused_without_hanging(gov, ws, tool):
    """A FIFO with no writer/reader would block an open() forever; the tool fails fast with a reason."""
    os.mkfifo(os.path.join(ws, "pipe"))
    args = {"path": "pipe"} if tool == "read_file" else {"path": "pipe", "content": "x"}
    r = run_tool(gov, tool, args, ws)
    assert r.decision.decision == "allow" and r.ran, r
    assert not r.timed_out and r.error is not None and "FIFO" in r.error and "refused" in r.error, r


def test_socket_is_refused(gov, ws):
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(ws, "sock"))
    try:
        r = run_tool(gov, "read_file", {"path": "sock"}, ws)
        assert r.error is not None and "refused" in r.error and "a socket" in r.error, r
        w = run_tool(gov, "write_file", {"path": "sock", "content": "x"}, ws)
        assert w.error is not None and "refused" in w.error and "a socket" in w.error, w
    finally:
        s.close()


def test_worker_never_opens_the_agents_path(gov, ws, monkeypatch):
    """Opening the agent's path in the worker process raises: the tools still work (they open it in the sandbox)."""
    real_open = os.open
    target = os.path.join(ws, "made.txt")

    def guarded(path, *a, **kw):
        if os.fspath(path) == target:
            raise AssertionError("the worker opened the agent's path")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", guarded)
    w = run_tool(gov, "write_file", {"path": "made.txt", "content": "héllo"}, ws)
    assert w.error is None and w.confinement == "bwrap", w
    r = run_tool(gov, "read_file", {"path": "made.txt"}, ws)
    assert (r.error, r.output, r.confinement) == (None, "héllo", "bwrap"), r


def test_a_hung_tool_fails_that_action(policy, ws):
    """The file helper that never returns (here: stopped by a tiny timeout) fails the action; the worker goes on."""
    gov = Governor(policy, resolver=table_resolver)
    limits = policy.execution.model_copy(update={"timeout_s": 0.001})
    r = run_tool(gov, "read_file", {"path": "README.md"}, ws, limits=limits)
    assert r.ran and r.timed_out and r.error and "timed out" in r.error, r
    assert run_tool(gov, "read_file", {"path": "README.md"}, ws).error is None


def test_fetch_parsing_runs_in_the_sandbox(monkeypatch):
    """http_get's request and reply parsing go through the sandboxed helper, never http.client in the worker."""
    assert "_PinnedHTTPS" not in vars(execute_mod) and "_PinnedHTTP" not in vars(execute_mod)
    assert "http.client" in execute_mod.helpers.FETCH and "wrap_socket" in execute_mod.helpers.FETCH
