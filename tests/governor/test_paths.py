"""Path resolution for read_file/write_file and shell operands (real filesystem, real symlinks)."""

from __future__ import annotations

import os

import pytest

from swarmd.governor.paths import judge_path, resolve, workspace_root


def decide(gov, tool, path, ws):
    args = {"path": path} if tool == "read_file" else {"path": path, "content": "x"}
    return gov.decide(tool, args, ws)


@pytest.mark.parametrize("tool", ["read_file", "write_file"])
def test_inside_workspace_allowed(gov, workspace, tool):
    assert decide(gov, tool, "src/app.py", workspace).decision == "allow"
    assert decide(gov, tool, os.path.join(workspace, "src", "x.py"), workspace).decision == "allow"


@pytest.mark.parametrize("tool", ["read_file", "write_file"])
@pytest.mark.parametrize("path", ["link_out/passwd", "../outside.txt", "src/../../outside.txt",
                                  "/proc/self/root/etc/passwd", "/etc//passwd", "~/x"])
def test_escapes_denied(gov, workspace, tool, path):
    d = decide(gov, tool, path, workspace)
    assert d.decision == "deny" and d.rule in ("files.outside-workspace", "files.secret"), d


def test_symlink_escape_reports_real_target(gov, workspace):
    d = decide(gov, "read_file", "link_out/hostname", workspace)
    assert d.rule == "files.outside-workspace" and "/etc/hostname" in d.reason


def test_symlink_inside_workspace_followed(gov, workspace, tmp_path):
    link = os.path.join(workspace, "docs_link")
    if not os.path.islink(link):
        os.symlink(os.path.join(workspace, "docs"), link)
    assert decide(gov, "read_file", "docs_link/shadow-mode.md", workspace).decision == "allow"


def test_nul_byte_denied(gov, workspace):
    d = decide(gov, "read_file", "src/app.py\x00.txt", workspace)
    assert d.decision == "deny" and d.rule == "files.bad-path" and "NUL" in d.reason


def test_empty_path_denied(gov, workspace):
    assert decide(gov, "write_file", "", workspace).rule == "files.bad-path"


@pytest.mark.parametrize("path", [".env", "config/.env.prod", "secrets_link/id_rsa", "~/.ssh/id_rsa",
                                  "~/.aws/credentials", "~/.config/gcloud/x.json", "/etc/shadow",
                                  "/proc/self/environ", "/proc/1/environ", "deploy/server.key"])
def test_secrets_always_denied(gov, workspace, path):
    d = decide(gov, "read_file", path, workspace)
    assert d.decision == "deny" and d.rule == "files.secret", d


def test_read_outside_only_where_listed(gov, workspace):
    assert decide(gov, "read_file", "/usr/share/doc/anything", workspace).decision == "allow"
    assert decide(gov, "read_file", "/usr/share/other", workspace).decision == "deny"
    # listed for reading, not for writing
    assert decide(gov, "write_file", "/usr/share/doc/anything", workspace).decision == "deny"


def test_git_internals_write_denied_but_readable(gov, workspace):
    assert decide(gov, "write_file", ".git/hooks/pre-commit", workspace).decision == "deny"
    assert decide(gov, "read_file", ".git/HEAD", workspace).decision == "allow"


def test_hardlink_write_asks(gov, workspace, tmp_path):
    outside = tmp_path / "target.txt"
    outside.write_text("x")
    link = os.path.join(workspace, "hard.txt")
    if not os.path.exists(link):
        os.link(outside, link)
    assert decide(gov, "write_file", "hard.txt", workspace).rule == "files.hardlink"


def test_resolve_normalises(workspace):
    lexical, real = resolve("src//../src/./app.py", workspace)
    assert lexical == real == os.path.join(os.path.realpath(workspace), "src", "app.py")
    assert resolve("/proc/self/root/etc", "/")[1] == "/etc"


def test_bad_workspace(gov):
    for ws in ["relative/dir", "/nonexistent/ws", "/", ""]:
        assert gov.decide("read_file", {"path": "x"}, ws).rule == "governor.bad-workspace"


def test_judge_path_relative_cwd(policy, workspace):
    root = workspace_root(workspace)
    assert judge_path(policy, "app.py", "read", root, os.path.join(root, "src")).decision == "allow"
    assert judge_path(policy, "../../outside.txt", "read", root, os.path.join(root, "src")).decision == "deny"
