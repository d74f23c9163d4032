"""Nothing is expanded on the host (issue 21, deliverable 5): globs are expanded only inside the
sandbox, and every glob is judged as a path as the sandbox will see it, whatever the program
(``echo``, ``basename``, a grep pattern, a ``for`` list). A directory beside the workspace
holds a file with a random name; no action may print that name."""

from __future__ import annotations

import secrets

import pytest

from swarmd.governor import Governor
from swarmd.governor.execute import run_tool
from swarmd.governor.policy import Policy
from swarmd.governor.sandbox import probe

from .conftest import make_workspace, table_resolver


@pytest.fixture()
def host(tmp_path):
    """(workspace, host directory outside it, the random name of the file there)."""
    ws = make_workspace(tmp_path / "w")
    outside = tmp_path / "host"
    outside.mkdir()
    name = "canary-" + secrets.token_hex(8)
    (outside / name).write_text("x")
    return str(ws), str(outside), name


LINES = ["echo {d}/*", "basename -a {d}/*", "printf '%s\\n' {d}/*", "timeout 5 echo {d}/c*",
         "for f in {d}/*; do echo $f; done", "echo {d}/*-[0-9a-f]*", "ls -d {d}/* | cat", "id {d}/*"]


@pytest.mark.parametrize("line", LINES)
def test_host_globs_are_judged_as_paths(gov, host, line):
    ws, outside, name = host
    r = run_tool(gov, "shell", {"command": line.format(d=outside)}, ws)
    assert r.decision.decision == "deny" and r.decision.rule == "files.outside-workspace", r.decision
    assert name not in r.output and name not in r.decision.reason


@pytest.mark.parametrize("line", LINES[:6])
def test_listed_host_globs_expand_only_in_the_sandbox(policy, host, line):
    """Even where the policy lists the host directory as readable, the line's globs are expanded
    inside the sandbox (which does not mount that directory), never by the worker on the host."""
    if not probe().available:
        pytest.skip("bwrap not usable here")
    ws, outside, name = host
    data = policy.model_dump()
    data["files"]["read_outside_workspace"] = [*data["files"]["read_outside_workspace"], outside + "/**"]
    gov = Governor(Policy.model_validate(data), resolver=table_resolver)
    r = run_tool(gov, "shell", {"command": line.format(d=outside)}, ws)
    assert r.decision.decision == "allow" and r.ran, r
    assert name not in r.output, r


def test_workspace_globs_still_work(gov, host):
    ws, _outside, _name = host
    r = run_tool(gov, "shell", {"command": "echo src/*.py"}, ws)
    assert r.decision.decision == "allow" and r.output.split() == ["src/app.py", "src/env.py", "src/util.py"], r
