"""The agent's copy carries the workspace's latest commits with every secret path left out of
all of them (swarmd.governor.history), and a change that undoes the operator's uncommitted work
asks (workspace.uncommitted-lost). Real git, real copies (no sandbox needed for these)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarmd.governor import load_policy
from swarmd.governor.policy import parse_policy
from swarmd.governor.history import unquote
from swarmd.governor.workspace import change_set, discard, make_copy

from .conftest import REPO

POLICY = REPO / "src" / "swarmd" / "policy.yaml"
OLD_SECRET = "tok-OLD-HISTORY-SECRET-81c2"
KEY_SECRET = "KEY-IN-DEPLOY-DIR-4d1e"
ENV_SECRET = "tok-TRACKED-ENV-99aa"


def git(cwd, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Operator", "GIT_AUTHOR_EMAIL": "op@x", "GIT_COMMITTER_NAME": "Operator",
           "GIT_COMMITTER_EMAIL": "op@x"}
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode("utf-8", "replace")


@pytest.fixture
def real(tmp_path) -> Path:
    """Five commits: a secret committed then removed (``.env.production``), a tracked
    ``.env`` and a key under ``deploy/`` changed twice, a file with a space and a quote in its
    name; then the operator's uncommitted change to ``util.py``."""
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    steps = [
        ("first", {"util.py": "def add(a, b):\n    return a + b\n", ".env.production": f"T={OLD_SECRET}\n"}),
        ("drop prod env", {".env.production": None, "odd \"name\".txt": "odd\n"}),
        ("deploy key", {"deploy/server.key": f"{KEY_SECRET}-1\n", ".env": f"E={ENV_SECRET}-1\n"}),
        ("rotate", {"deploy/server.key": f"{KEY_SECRET}-2\n", ".env": f"E={ENV_SECRET}-2\n"}),
        ("util: neg", {"util.py": "def add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n"}),
    ]
    for msg, files in steps:
        for name, text in files.items():
            p = ws / name
            if text is None:
                p.unlink()
            else:
                p.parent.mkdir(exist_ok=True)
                p.write_text(text)
        git(ws, "add", "-A")
        git(ws, "commit", "-qm", msg)
    (ws / "util.py").write_text((ws / "util.py").read_text() + "# WIP by the operator\n")
    return ws


def copy_git(ac, *args: str) -> str:
    """git in the copy (owned by the sandbox's uid when the worker is root)."""
    return git(ac.tree, "-c", "safe.directory=*", *args)


def test_the_copy_has_the_history_without_any_secret_path(tmp_path, real):
    ac = make_copy(str(real), str(tmp_path / "copy"), load_policy(POLICY))
    try:
        log = copy_git(ac, "log", "--format=%an %s")
        assert log.splitlines() == ["Operator util: neg", "Operator rotate", "Operator deploy key",
                                    "Operator drop prod env", "Operator first"]
        every = copy_git(ac, "cat-file", "--batch-all-objects", "--batch")
        for secret in (OLD_SECRET, KEY_SECRET, ENV_SECRET):
            assert secret not in every
        paths = copy_git(ac, "log", "--format=", "--name-only", "--all")
        assert ".env" not in paths.split() and "deploy/server.key" not in paths and ".env.production" not in paths
        assert "def neg" in copy_git(ac, "show", "HEAD", "--", "util.py")
        assert 'odd "name".txt' in copy_git(ac, "ls-files", "-z").split("\0")
        # the operator's uncommitted change shows as one; the masked files are not worth a status line
        assert copy_git(ac, "status", "--porcelain").splitlines() == [" M util.py"]
        assert "WIP by the operator" in copy_git(ac, "diff")
        assert (Path(ac.tree) / ".env").read_bytes() == b""
    finally:
        discard(ac)


def test_history_commits_bounds_the_history_and_zero_gives_one_snapshot(tmp_path, real):
    text = POLICY.read_text()
    assert "  history_commits: 50\n" in text
    for n, want in ((2, ["util: neg", "rotate"]), (0, None)):
        pol = parse_policy(text.replace("  history_commits: 50\n", f"  history_commits: {n}\n"))
        assert pol.sandbox.history_commits == n
        ac = make_copy(str(real), str(tmp_path / f"copy{n}"), pol)
        try:
            subjects = copy_git(ac, "log", "--format=%s").splitlines()
            if want is None:
                assert len(subjects) == 1 and "no history" in subjects[0]
            else:
                assert subjects == want
                # the oldest imported commit holds its whole tree (minus secrets)
                assert copy_git(ac, "ls-tree", "-r", "--name-only", "HEAD~1").split("\n")[:2] == \
                    ['"odd \\"name\\".txt"', "util.py"]
            assert KEY_SECRET not in copy_git(ac, "cat-file", "--batch-all-objects", "--batch")
        finally:
            discard(ac)


def test_undoing_the_operators_uncommitted_change_asks(tmp_path, real):
    pol = load_policy(POLICY)
    ac = make_copy(str(real), str(tmp_path / "copy"), pol)
    try:
        copy_git(ac, "stash", "-q")                 # the copy's util.py back to HEAD
        (c,) = change_set(ac, pol).changes
        assert (c.path, c.op, c.decision.decision, c.decision.rule) == \
            ("util.py", "modify", "ask", "workspace.uncommitted-lost")
        copy_git(ac, "stash", "pop", "-q")
        with open(os.path.join(ac.tree, "util.py"), "a") as f:
            f.write("# the agent's line\n")         # keeps the operator's lines: allowed
        (c,) = change_set(ac, pol).changes
        assert (c.op, c.decision.decision) == ("modify", "allow")
    finally:
        discard(ac)


def test_unquote_reads_git_c_quoted_paths():
    assert unquote(b'"odd \\"name\\".txt"') == b'odd "name".txt'
    assert unquote(b'"caf\\303\\251\\t"') == "café\t".encode()
    assert unquote(b"plain/path") == b"plain/path"


def test_a_stream_the_filter_does_not_understand_fails_closed_to_one_snapshot(tmp_path, real, monkeypatch):
    """Renames, copies, tags or an unknown command in the export: no history at all, one snapshot
    commit of the masked tree (never a partly filtered history)."""
    from swarmd.governor import history

    with pytest.raises(history.HistoryError, match="renames, copies and tags"):
        history._filtered(b"commit refs/heads/main\nR a.txt b.txt\n", b"main", lambda p: False)
    real_filtered = history._filtered

    def with_a_tag(stream, branch, secret):
        return real_filtered(stream + b"tag v1\n", branch, secret)
    monkeypatch.setattr(history, "_filtered", with_a_tag)
    ac = make_copy(str(real), str(tmp_path / "copy"), load_policy(POLICY))
    try:
        subjects = copy_git(ac, "log", "--format=%s").splitlines()
        assert len(subjects) == 1 and "no history" in subjects[0]
        assert OLD_SECRET not in copy_git(ac, "cat-file", "--batch-all-objects", "--batch")
    finally:
        discard(ac)
