"""The agent works on its own copy; only the judged change set reaches the real workspace.

Every test runs ``swarmctl policy run`` for real (bubblewrap, real git, real files): the
actions run in the objective's copy and the change set is applied at the end exactly as
a worker applies it. Afterwards the operator's next plain ``git status``/``git diff``/
``git log`` run in the REAL workspace (and in any directory of it that git would take
for a repository), with a canary that any payload would create.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from swarmd.cli import main
from swarmd.governor.sandbox import probe

from .conftest import REPO

pytestmark = pytest.mark.skipif(not probe().available, reason="bwrap not usable here")

POLICY = str(REPO / "src" / "swarmd" / "policy.yaml")
TOKEN = "tok-REAL-SECRET-5f3a9c"
CRED = "ghp_CREDinURL7777"


def git(cwd, *args: str, home: str) -> subprocess.CompletedProcess:
    """git as a person runs it: no overrides, only a private HOME (no personal config)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def real(tmp_path) -> Path:
    """The operator's workspace: a git repository with tracked files, a tracked secret
    (``.env``) and a remote whose URL carries a credential."""
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "README.md").write_text("# project\n")
    (ws / "src" / "app.py").write_text("print('hello')\n")
    (ws / ".env").write_text(f"API_TOKEN={TOKEN}\n")
    home = str(tmp_path)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"),
                 ("-c", "user.name=op", "-c", "user.email=op@x", "commit", "-qm", "init"),
                 ("remote", "add", "origin", f"https://{CRED}@example.com/org/repo.git")):
        assert git(ws, *args, home=home).returncode == 0
    return ws


def policy_run(tmp_path: Path, ws: Path, rows: list[dict], capsys, *extra: str) -> tuple[dict, list]:
    """Run ``swarmctl policy run --json``; returns (results by id, change rows)."""
    f = tmp_path / "actions.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["policy", "run", "--policy", POLICY, "--workspace", str(ws), "--file", str(f), "--json",
                 *extra]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    return {r["id"]: r for r in lines if "id" in r}, [r for r in lines if "change" in r]


def shell(i: str, command: str) -> dict:
    return {"id": i, "tool": "shell", "args": {"command": command}}


def script(i: str, path: str, code: str) -> list[dict]:
    """Write a Python script into the workspace and run it (interpreters running a
    workspace script are allowed by the shipped policy)."""
    return [{"id": i + "-w", "tool": "write_file", "args": {"path": path, "content": code}}, shell(i, f"python3 {path}")]


def run_script(tmp_path: Path, ws: Path, capsys, name: str, code: str) -> list:
    """Run Python ``code`` as workspace script ``name``.py through ``policy run``; it must
    succeed in the copy. Returns the change rows."""
    res, changes = policy_run(tmp_path, ws, script(name, f"{name}.py", code), capsys)
    assert res[name]["exit_code"] == 0, res[name]["output"]
    return changes


def operator_next(ws: Path, home: Path, canary: Path) -> None:
    """The operator's next plain git commands in the real workspace and in every
    directory of it git would take for a repository; nothing of the agent's runs."""
    dirs = [ws] + [Path(d) for d, names, files in os.walk(ws)
                   if Path(d) != ws and ({"HEAD"} <= set(files) or ".git" in names + files)]
    for d in dirs:
        for args in (("status",), ("diff",), ("log", "-p", "-3"), ("-c", "user.name=op", "-c", "user.email=op@x",
                                                                  "commit", "-qam", "next")):
            git(d, *args, home=str(home))
    assert not canary.exists(), f"the agent's payload ran in the operator's git ({canary} was created)"


def assert_real_repo_intact(ws: Path) -> None:
    assert (ws / ".git").is_dir() and not (ws / ".git").is_symlink()
    cfg = (ws / ".git" / "config").read_text()
    assert "fsmonitor" not in cfg and "hooksPath" not in cfg
    assert not [p for p in (ws / ".git" / "hooks").iterdir() if not p.name.endswith(".sample")]


def changes_by_path(changes: list) -> dict:
    return {c["path"]: c for c in changes}


def test_separate_git_dir_and_fsmonitor_payload_never_reach_the_real_repository(tmp_path, real, capsys):
    canary = tmp_path / "canary"
    _, changes = policy_run(tmp_path, real, [
        shell("mk", "mkdir -p .cache"),
        shell("init", "git init -q --separate-git-dir=.cache/repo"),
        shell("plant", r"printf '[core]\n\tfsmonitor = sh x.sh\n' >> .cache/repo/config"),
        {"id": "x", "tool": "write_file", "args": {"path": "x.sh", "content": f"touch {canary}\n"}},
    ], capsys)
    operator_next(real, tmp_path, canary)
    assert_real_repo_intact(real)
    assert not (real / ".cache" / "repo").exists()
    by = changes_by_path(changes)
    assert (by[".cache/repo"]["change"], by[".cache/repo"]["rule"]) == ("refused", "workspace.git-metadata")
    assert (by[".git"]["change"], by[".git"]["rule"]) == ("refused", "workspace.git-metadata")
    assert by["x.sh"]["change"] == "applied"      # an ordinary file: it is applied, and runs only if someone runs it


def test_a_renamed_git_directory_and_a_gitfile_are_refused(tmp_path, real, capsys):
    canary = tmp_path / "canary"
    code = ("import os, shutil\n"
            "os.rename('.git', 'old')\n"       # its read-only config and hooks mounts move along
            "shutil.copytree('old', 'g2')\n"
            f"open('g2/config', 'a').write('[core]\\n\\tfsmonitor = touch {canary}\\n')\n"
            "open('.git', 'w').write('gitdir: g2\\n')\n"
            "open('src/.git', 'w').write('gitdir: ../g2\\n')\n")
    changes = run_script(tmp_path, real, capsys, "mv", code)
    operator_next(real, tmp_path, canary)
    assert_real_repo_intact(real)
    assert not (real / "old").exists() and not (real / "g2").exists()
    by = changes_by_path(changes)
    assert {by[p]["change"] for p in ("old", "g2", ".git", "src/.git")} == {"refused"}
    assert not (real / "src" / ".git").exists()


def test_nested_repositories_and_git_config_files_are_refused(tmp_path, real, capsys):
    canary = tmp_path / "canary"
    payload = f"[core]\\n\\tfsmonitor = touch {canary}\\n"
    code = ("import os, subprocess\n"
            "subprocess.run(['git', 'init', '-q', 'vendor/lib'], check=True)\n"
            f"open('vendor/lib/.git/config', 'a').write('{payload}')\n"
            "open('vendor/lib/code.py', 'w').write('x = 1\\n')\n"
            "for d in ('tools/bare/objects', 'tools/bare/refs/heads'):\n"
            "    os.makedirs(d)\n"
            "open('tools/bare/HEAD', 'w').write('ref: refs/heads/main\\n')\n"
            f"open('tools/bare/config', 'w').write('{payload}')\n"
            "os.makedirs('conf')\n"
            f"open('conf/config', 'w').write('{payload}')\n"
            "open('tools/commondir', 'w').write('../.git\\n')\n")
    changes = run_script(tmp_path, real, capsys, "nest", code)
    operator_next(real, tmp_path, canary)
    assert_real_repo_intact(real)
    assert not (real / "vendor" / "lib" / ".git").exists()
    assert (real / "vendor" / "lib" / "code.py").read_text() == "x = 1\n"   # the nested project's files are fine
    assert not (real / "tools" / "bare" / "HEAD").exists() and not (real / "tools" / "bare" / "config").exists()
    assert not (real / "conf" / "config").exists() and not (real / "tools" / "commondir").exists()
    rules = {c["path"]: c["rule"] for c in changes if c["change"] == "refused"}
    assert rules["conf/config"] == "workspace.git-config"
    assert rules["vendor/lib/.git"] == "workspace.git-metadata" and rules["tools"] == "workspace.git-metadata"


def test_setuid_bits_are_stripped(tmp_path, real, capsys):
    code = ("import os\n"
            "open('tool', 'w').write('#!/bin/sh\\n')\n"
            "os.chmod('tool', 0o6755)\n"
            "os.mkdir('shared')\n"
            "os.chmod('shared', 0o3775)\n")
    changes = run_script(tmp_path, real, capsys, "suid", code)
    st = os.lstat(real / "tool")
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(real / "shared").st_mode) == 0o775
    assert "stripped" in changes_by_path(changes)["tool"]["note"]


def test_fifos_and_symlinks_out_of_the_workspace_are_refused(tmp_path, real, capsys):
    code = ("import os\n"
            "os.mkfifo('pipe')\n"
            "os.symlink('/etc', 'etc')\n"
            "os.symlink('../../..', 'src/up')\n"
            "os.symlink('/etc/passwd', 'passwd')\n"
            "os.symlink('../README.md', 'src/readme')\n")
    changes = run_script(tmp_path, real, capsys, "special", code)
    for name in ("pipe", "etc", "src/up", "passwd"):
        assert not os.path.lexists(real / name), name
    assert os.readlink(real / "src" / "readme") == "../README.md"     # a link inside the workspace is kept
    by = changes_by_path(changes)
    assert by["pipe"]["rule"] == "workspace.special-file"
    assert {by[p]["rule"] for p in ("etc", "src/up", "passwd")} == {"workspace.symlink-escape"}
    # reading and writing the FIFO through the file tools must not hang the worker either
    operator_next(real, tmp_path, tmp_path / "canary")


def test_benign_edit_of_a_tracked_file_is_applied(tmp_path, real, capsys):
    res, changes = policy_run(tmp_path, real, [
        shell("edit", "sed -i 's/hello/hello, world/' src/app.py"),
        {"id": "new", "tool": "write_file", "args": {"path": "docs/notes.md", "content": "notes\n"}},
    ], capsys)
    assert res["edit"]["exit_code"] == 0, res["edit"]
    assert (real / "src" / "app.py").read_text() == "print('hello, world')\n"
    assert (real / "docs" / "notes.md").read_text() == "notes\n"
    assert (real / ".env").read_text() == f"API_TOKEN={TOKEN}\n"        # the masked secret is not overwritten
    assert git(real, "status", "--porcelain", home=str(tmp_path)).stdout.splitlines() == [" M src/app.py",
                                                                                           "?? docs/"]
    assert {c["change"] for c in changes} == {"applied"}


def test_deleting_a_tracked_file_waits_for_approval(tmp_path, real, capsys):
    res, changes = policy_run(tmp_path, real, [shell("rm", "git rm -q README.md")], capsys)
    assert res["rm"]["exit_code"] == 0, res["rm"]
    assert (real / "README.md").read_text() == "# project\n"
    by = changes_by_path(changes)
    assert (by["README.md"]["change"], by["README.md"]["decision"], by["README.md"]["rule"]) == \
        ("pending", "ask", "workspace.delete-tracked")


def test_the_agents_git_shows_no_secret_and_no_credential(tmp_path, real, capsys):
    rows = [shell(str(i), c) for i, c in enumerate((
        "git diff", "git log -p", "git show HEAD", "git grep API_TOKEN HEAD", "git remote -v",
        "git cat-file --batch-all-objects --batch", "git config --list --local", "cat .git/config",
        "git status --porcelain"))]
    res, changes = policy_run(tmp_path, real, rows, capsys)
    for i, r in res.items():
        assert r["ran"], r
        assert TOKEN not in r["output"] and CRED not in r["output"], (i, r["output"][:300])
    assert "example.com/org/repo.git" in res["4"]["output"]           # the remote is there, without userinfo
    # masked: git sees no change (lines of git's own warnings aside)
    assert [x for x in res["8"]["output"].splitlines() if not x.startswith("warning:")] == []
    assert changes == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting the copy's tmpfs needs root")
def test_the_copy_is_a_private_tmpfs_capped_in_bytes_and_inodes(tmp_path, real):
    from swarmd.governor.policy import parse_policy
    from swarmd.governor.workspace import change_set, discard, dismiss, make_copy
    pol = parse_policy("version: 1\nsandbox:\n  write_cap_mb: 1\n  write_cap_inodes: 100\n")
    ac = make_copy(str(real), str(tmp_path / "copy"), pol)
    try:
        assert os.path.ismount(ac.tree) and (Path(ac.tree) / "src" / "app.py").read_text() == "print('hello')\n"
        assert not os.path.ismount(ac.dir)                   # swarmd's base manifest is not in the agent's tmpfs
        st = os.statvfs(ac.tree)
        assert st.f_blocks * st.f_frsize < 64 << 20         # a 1 MiB cap plus the copy and its git pack
        with pytest.raises(OSError) as e:                    # inodes: the copy's entries + 1024 + 100
            for i in range(5000):
                (Path(ac.tree) / f"f{i}").touch()
        assert e.value.errno == 28                            # ENOSPC
        made = i                                              # files the full tmpfs let the agent make
        # the full tmpfs does not stop swarmd from recording the change set (red-team rt-e001)
        cs = change_set(ac, pol)
        assert len([c for c in cs.changes if c.op == "add"]) == made
        dismiss(ac, [c.path for c in cs.changes])
        assert change_set(ac, pol).changes == []
    finally:
        discard(ac)
    assert not os.path.exists(ac.dir)


def test_commits_are_made_by_swarmd_from_the_applied_change_set_not_by_the_agents_git(tmp_path, real, capsys):
    canary = tmp_path / "canary"
    res, changes = policy_run(tmp_path, real, [
        {"id": "hook", "tool": "write_file", "args": {"path": "hook.sh", "content": f"touch {canary}\n"}},
        shell("edit", "echo 'x = 2' >> src/app.py"),
        shell("commit", "git add -A && git commit -qm 'agent commit'"),
    ], capsys, "--commit", "apply the agent's edit")
    assert res["commit"]["exit_code"] == 0, res["commit"]["output"]
    home = str(tmp_path)
    log = git(real, "log", "--format=%s|%an", home=home).stdout.splitlines()
    assert log == ["apply the agent's edit|swarmd", "init|op"]           # not the agent's commit
    shown = git(real, "show", "--stat", "--format=", "HEAD", home=home).stdout
    assert "src/app.py" in shown and "hook.sh" in shown
    assert git(real, "status", "--porcelain", home=home).stdout == ""
    assert [c["commit"] for c in changes if c["change"] == "commit"] == [git(real, "rev-parse", "HEAD",
                                                                                home=home).stdout.strip()]
    operator_next(real, tmp_path, canary)


def test_the_real_workspace_path_stands_for_the_copy(tmp_path, real, capsys):
    """rt-b018: absolute paths of the real workspace are judged and run as the copy's (read_file,
    write_file, shell inside the sandbox); what leaves it by ``..`` is still outside."""
    (tmp_path / "outside.txt").write_text("not yours\n")
    rows = [{"id": "r", "tool": "read_file", "args": {"path": f"{real}/README.md"}},
            shell("s", f"cat {real}/src/app.py"),
            {"id": "w", "tool": "write_file", "args": {"path": f"{real}/src/new.py", "content": "x = 1\n"}},
            shell("c", f"cd {real}/src && cat ../README.md"),
            shell("o", f"cat {real}/../outside.txt"),
            {"id": "o2", "tool": "read_file", "args": {"path": f"{real}/../outside.txt"}}]
    res, changes = policy_run(tmp_path, real, rows, capsys)
    assert "# project" in res["r"]["output"] and res["r"]["decision"] == "allow", res["r"]
    assert res["s"]["exit_code"] == 0 and "print('hello')" in res["s"]["output"], res["s"]
    assert res["w"]["decision"] == "allow"
    assert res["c"]["exit_code"] == 0 and "# project" in res["c"]["output"], res["c"]
    for i in ("o", "o2"):
        assert (res[i]["decision"], res[i]["rule"]) == ("deny", "files.outside-workspace"), res[i]
        assert "not yours" not in res[i]["output"]
    assert changes_by_path(changes)["src/new.py"]["change"] == "applied"
    assert (real / "src" / "new.py").read_text() == "x = 1\n"
