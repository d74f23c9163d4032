"""``swarmctl policy run``: actions judged, the allowed ones run as a worker runs them."""

from __future__ import annotations

import json
import os

import pytest

from swarmd.cli import main
from swarmd.governor.sandbox import probe

from .conftest import REPO, make_workspace

POLICY = str(REPO / "src" / "swarmd" / "policy.yaml")
FIELDS = {"id", "decision", "rule", "reason", "ran", "exit_code", "output", "truncated", "error", "confinement"}


def write(tmp_path, rows):
    f = tmp_path / "actions.jsonl"
    f.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(f)


@pytest.mark.skipif(not probe().available, reason="bwrap not usable here")
def test_allowed_actions_run_in_the_sandbox_others_never(tmp_path, capsys):
    ws = str(make_workspace(tmp_path))
    f = write(tmp_path, [
        {"id": "ls", "tool": "shell", "args": {"command": "ls src"}},
        {"id": "env", "tool": "shell", "args": {"command": "cat .env"}},
        {"id": "rm", "tool": "shell", "args": {"command": "rm notes.txt"}},
        {"id": "w", "tool": "write_file", "args": {"path": "made.txt", "content": "x"}},
        {"id": "home", "tool": "shell", "args": {"command": "echo $HOME; cat made.txt"}},
    ])
    assert main(["policy", "run", "--policy", POLICY, "--workspace", ws, "--file", f, "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    res = {r["id"]: r for r in lines if "id" in r}
    assert all(set(r) == FIELDS for r in res.values())
    # the actions ran in the objective's copy; the change set was applied to the workspace at the end
    assert [(c["change"], c["path"]) for c in lines if "change" in c] == [("applied", "made.txt")]
    assert open(os.path.join(ws, "made.txt")).read() == "x"
    assert (res["ls"]["decision"], res["ls"]["ran"], res["ls"]["exit_code"], res["ls"]["confinement"]) == \
        ("allow", True, 0, "bwrap")
    assert res["ls"]["output"].split() == ["app.py", "env.py", "util.py"]
    assert (res["env"]["decision"], res["env"]["rule"], res["env"]["ran"]) == ("deny", "files.secret", False)
    assert (res["rm"]["decision"], res["rm"]["ran"]) == ("ask", False) and os.path.exists(os.path.join(ws, "notes.txt"))
    assert res["home"]["output"] == "/tmp/home\nx"


def test_bad_line_runs_nothing(tmp_path, capsys):
    ws = str(make_workspace(tmp_path))
    f = write(tmp_path, [{"id": "t", "tool": "shell", "args": {"command": "touch made.txt"}}, '{"id": "b", "tool": "sh"}'])
    assert main(["policy", "run", "--policy", POLICY, "--workspace", ws, "--file", f]) == 2
    assert "actions.jsonl:2" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(ws, "made.txt"))


def test_missing_workspace_is_bad_input(tmp_path, capsys):
    f = write(tmp_path, [{"id": "t", "tool": "shell", "args": {"command": "ls"}}])
    assert main(["policy", "run", "--workspace", str(tmp_path / "nope"), "--file", f, "--policy", POLICY]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_status_says_how_commands_are_confined(redis_url, capsys):
    """``swarmctl status`` (the daemon need not run) reports this machine's sandbox."""
    main(["status", "--redis-url", redis_url, "--json"])
    assert json.loads(capsys.readouterr().out)["sandbox"] == {
        "kind": probe().kind, "available": probe().available, "reason": probe().reason}
    main(["status", "--redis-url", redis_url])
    assert f"sandbox: {probe().reason}" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")
