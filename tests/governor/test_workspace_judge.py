"""Change-set judging on real files: the copy is edited directly (as the sandbox would), then judged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarmd.governor import load_policy
from swarmd.governor.workspace import apply, change_set, diff_text, discard, dismiss, make_copy

from .conftest import REPO


@pytest.fixture
def copy(tmp_path):
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "a.py").write_text("a = 1\n")
    (ws / "scratch.log").write_text("untracked\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "src"], ["-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qm", "i"]):
        subprocess.run(["git", *args], cwd=ws, env=env, check=True, capture_output=True)
    ac = make_copy(str(ws), str(tmp_path / "copy"), load_policy(REPO / "src" / "swarmd" / "policy.yaml"))
    yield ac, ws, Path(ac.tree)
    discard(ac)


def judged(ac) -> dict:
    return {c.path: (c.op, c.decision.decision, c.decision.rule)
            for c in change_set(ac, load_policy(REPO / "src" / "swarmd" / "policy.yaml")).changes}


def test_git_metadata_in_any_case_and_escaping_relative_links(copy):
    ac, _, tree = copy
    (tree / "sub" / ".GIT").mkdir(parents=True)
    (tree / "sub" / ".GIT" / "config").write_text("[core]\n\thooksPath = x\n")
    (tree / "src" / "out").symlink_to("../../x")
    (tree / "src" / "in").symlink_to("../scratch.log")
    got = judged(ac)
    assert got["sub/.GIT"][1:] == ("deny", "workspace.git-metadata")
    assert got["src/out"][1:] == ("deny", "workspace.symlink-escape")
    assert got["src/in"][1] == "allow"


def test_untracked_deletion_applies_tracked_asks_and_conflicts_ask(copy):
    ac, ws, tree = copy
    (tree / "scratch.log").unlink()
    (tree / "src" / "a.py").unlink()
    (tree / "src" / "b.py").write_text("b\n")
    (ws / "src" / "b.py").write_text("the operator's\n")            # written in the real workspace meanwhile
    (tree / ".gitmodules").write_text("[submodule \"x\"]\n")
    got = judged(ac)
    assert got["scratch.log"] == ("delete", "ask", "workspace.delete-existing")   # untracked, yet the operator's
    assert got["src/a.py"] == ("delete", "ask", "workspace.delete-tracked")
    assert got["src/b.py"][1:] == ("ask", "workspace.conflict")
    assert got[".gitmodules"][1] == "ask"                            # workspace.protected or the policy's ask
    res = apply(ac, change_set(ac, load_policy(REPO / "src" / "swarmd" / "policy.yaml")))
    assert (ws / "scratch.log").exists() and (ws / "src" / "a.py").exists()
    assert (ws / "src" / "b.py").read_text() == "the operator's\n"
    assert sorted(c["path"] for c in res["pending"]) == [".gitmodules", "scratch.log", "src/a.py", "src/b.py"]
    dismiss(ac, ["src/a.py"])                                        # rejected: not asked again
    assert "src/a.py" not in judged(ac) and "src/b.py" in judged(ac)


def test_an_unchanged_copy_has_an_empty_change_set_and_touching_is_not_a_change(copy):
    ac, _, tree = copy
    assert judged(ac) == {}
    os.utime(tree / "src" / "a.py")                                  # ctime moves, content does not
    os.chmod(tree / "src" / "a.py", 0o644)
    assert judged(ac) == {}


@pytest.mark.parametrize("resolution", ["approve", "reject"])
def test_approval_point_parks_pending_changes_and_the_resolution_finishes_them(copy, resolution):
    from swarmd.agent.loop import AgentOutcome
    from swarmd.agent.changes import CHANGESET_TOOL, approval_point, resume_changes
    from swarmd.agent.approvals import RESOLUTIONS
    ac, ws, tree = copy
    pol = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    (tree / "src" / "a.py").unlink()
    (tree / "new.txt").write_text("n\n")
    out = approval_point(ac, pol, AgentOutcome("done", {"answer": "ok"}, loop={"steps": 2}))
    assert out.state == "awaiting_approval" and out.pending[0] == CHANGESET_TOOL
    assert out.pending[1]["changes"] == [{"op": "delete", "path": "src/a.py", "rule": "workspace.delete-tracked"}]
    assert "-a = 1" in out.pending[1]["diff"] and (ws / "new.txt").read_text() == "n\n"
    decision, rule = RESOLUTIONS[resolution]
    record = {"tool": out.pending[0], "args": out.pending[1], "loop": out.loop,
              "resolution": {"decision": resolution, "by": "t", "ts": 0, "rule": rule, "reason": "r"}}
    done = approval_point(ac, pol, resume_changes(ac, pol, record))
    assert (done.state, done.result["answer"], done.pending) == ("done", "ok", None)
    assert (ws / "src" / "a.py").exists() == (resolution == "reject")
    assert judged(ac) == {}                                          # nothing asked again


def test_a_change_set_that_cannot_be_read_fails_the_objective(copy):
    from swarmd.agent.loop import AgentOutcome
    from swarmd.agent.changes import approval_point
    ac, _, _ = copy
    Path(ac.dir, "base.json").write_text("{broken")
    out = approval_point(ac, load_policy(REPO / "src" / "swarmd" / "policy.yaml"), AgentOutcome("done", {"answer": "ok"}))
    assert out.state == "failed" and out.result["reason"].startswith("workspace change set not applied: ")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_applied_files_belong_to_the_real_workspaces_owner(copy):
    ac, ws, tree = copy
    for p in [ws, *ws.rglob("*")]:
        if ".git" not in p.parts:
            os.chown(p, 4242, 4343, follow_symlinks=False)
    (tree / "docs").mkdir()
    (tree / "docs" / "n.md").write_text("n\n")
    (tree / "src" / "a.py").write_text("a = 2\n")
    apply(ac, change_set(ac, load_policy(REPO / "src" / "swarmd" / "policy.yaml")))
    for p in (ws / "docs", ws / "docs" / "n.md", ws / "src" / "a.py"):
        assert (p.stat().st_uid, p.stat().st_gid) == (4242, 4343), p


@pytest.mark.skipif(not __import__("swarmd.governor.sandbox", fromlist=["probe"]).probe().available,
                    reason="bwrap not usable here")
def test_an_approved_action_is_not_asked_again_as_its_change_set_entry(copy):
    """Double approval: an approved ``rm`` of a tracked file (run in the sandbox, as the agent loop
    resumes it) carries its approval to the deletion in the change set (same path, same op); a
    tracked deletion nobody approved still asks; the path made again afterwards is judged afresh."""
    from swarmd.governor import Decision, Governor
    from swarmd.governor.execute import run_approved
    from swarmd.governor.workspace import approved_action
    ac, ws, tree = copy
    (ws / "src" / "c.py").write_text("c = 1\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ws.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["add", "src/c.py"], ["-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qm", "c"]):
        subprocess.run(["git", *args], cwd=ws, env=env, check=True, capture_output=True)
    discard(ac)
    ac = make_copy(str(ws), ac.dir, load_policy(REPO / "src" / "swarmd" / "policy.yaml"))
    tree = Path(ac.tree)
    gov = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"))
    ok = Decision("allow", "approval.approved", "approved by a person")
    assert gov.judge("shell", {"command": "rm src/a.py"}, str(tree)).decision.decision == "ask"
    with approved_action(str(tree), ok.rule):
        r = run_approved(gov, "shell", {"command": "rm src/a.py"}, str(tree), ok)
    assert r.ran and r.exit_code == 0, r
    (tree / "src" / "c.py").unlink()                       # no approval for this one
    got = judged(ac)
    assert got["src/a.py"] == ("delete", "allow", "workspace.approved-action")
    assert got["src/c.py"] == ("delete", "ask", "workspace.delete-tracked")
    res = apply(ac, change_set(ac, load_policy(REPO / "src" / "swarmd" / "policy.yaml")))
    assert not (ws / "src" / "a.py").exists() and (ws / "src" / "c.py").exists()
    assert [c["path"] for c in res["pending"]] == ["src/c.py"]
    (tree / "src" / "a.py").write_text("again\n")           # made again after the approval: judged afresh
    assert judged(ac)["src/a.py"][2] != "workspace.approved-action"


def test_deleting_a_file_the_objective_made_applies_one_the_workspace_had_asks(copy):
    """rt-d014: an untracked pre-existing file deleted (``git switch --orphan``) asks; a file the
    objective itself added (and that was applied) is deleted freely."""
    ac, ws, tree = copy
    pol = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    (tree / "mine.txt").write_text("made by the objective\n")
    apply(ac, change_set(ac, pol))
    assert (ws / "mine.txt").exists()
    (tree / "mine.txt").unlink()
    (tree / "scratch.log").unlink()
    got = judged(ac)
    assert got["mine.txt"][:2] == ("delete", "allow")
    assert got["scratch.log"] == ("delete", "ask", "workspace.delete-existing")
    apply(ac, change_set(ac, pol))
    assert not (ws / "mine.txt").exists() and (ws / "scratch.log").read_text() == "untracked\n"


def test_emptying_or_gutting_a_file_the_workspace_had_asks_ordinary_edits_apply(copy):
    """rt-d022/d024/d028/d029/d033: a modification removing most of a pre-existing file's content
    (emptied, gutted, overwritten with other text, replaced by a link) asks with its diff;
    small, additive and every-line rename edits apply; the objective's own files are free."""
    ac, ws, tree = copy
    pol = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    doc = "".join(f"line {i} of the operator's guide\n" for i in range(40))
    for name in ("empty.md", "gut.md", "other.md", "edit.md", "grow.md", "rename.md", "link.md"):
        (ws / name).write_text(doc)
    discard(ac)
    ac = make_copy(str(ws), ac.dir, pol)
    tree = Path(ac.tree)
    (tree / "mine.md").write_text(doc)
    apply(ac, change_set(ac, pol))                                   # the objective's own file, applied
    (tree / "empty.md").write_text("")
    (tree / "gut.md").write_text(doc.splitlines(keepends=True)[0] + "".join(doc.splitlines(keepends=True)[-5:]))
    (tree / "other.md").write_text("".join(f"{i * 7919 % 1000:>12} zz qq\n" for i in range(40)))
    (tree / "edit.md").write_text(doc.replace("line 3 ", "LINE three "))
    (tree / "grow.md").write_text(doc + "an appendix\n" * 100)
    (tree / "rename.md").write_text(doc.replace("guide", "handbook"))
    (tree / "link.md").unlink()
    (tree / "link.md").symlink_to("edit.md")
    (tree / "mine.md").write_text("")
    got = judged(ac)
    for name in ("empty.md", "gut.md", "other.md", "link.md"):
        assert got[name] == ("modify", "ask", "workspace.destructive-edit"), name
    for name in ("edit.md", "grow.md", "rename.md", "mine.md"):
        assert got[name][:2] == ("modify", "allow"), name
    res = apply(ac, change_set(ac, pol))
    assert (ws / "empty.md").read_text() == doc and (ws / "gut.md").read_text() == doc
    assert (ws / "mine.md").read_text() == "" and (ws / "rename.md").read_text() == doc.replace("guide", "handbook")
    assert "-line 20 of the operator's guide" in diff_text(ac, res["pending"])


def test_a_change_set_over_the_entry_cap_asks_as_a_whole(copy):
    """rt-e001: more than ``sandbox.max_changeset_entries`` entries are not applied one by one;
    every entry asks (``workspace.changeset-too-large``), denied ones stay denied."""
    ac, ws, tree = copy
    pol = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    pol = pol.model_copy(update={"sandbox": pol.sandbox.model_copy(update={"max_changeset_entries": 10})})
    (tree / "many").mkdir()
    for i in range(12):
        (tree / "many" / f"f{i}").write_text("x\n")
    (tree / "sub" / ".git").mkdir(parents=True)
    cs = change_set(ac, pol)
    rules = {c.path: (c.decision.decision, c.decision.rule) for c in cs.changes}
    assert len(rules) == 15
    assert rules["sub/.git"] == ("deny", "workspace.git-metadata")
    assert {v for k, v in rules.items() if k != "sub/.git"} == {("ask", "workspace.changeset-too-large")}
    assert "15 entries" in cs.changes[0].decision.reason or "15 entries" in cs.changes[-1].decision.reason
    res = apply(ac, cs)
    assert not (ws / "many").exists() and len(res["pending"]) == 14
    for i in range(3, 12):
        (tree / "many" / f"f{i}").unlink()
    assert all(d == "allow" for d, _ in
               ((c.decision.decision, c) for c in change_set(ac, pol).changes if not c.path.startswith("sub")))


@pytest.mark.parametrize("resolution", ["approve", "reject"])
def test_an_oversized_change_set_is_decided_as_one_beyond_the_listed_entries(copy, monkeypatch, resolution):
    """Approving an oversized set applies every entry still asked (not only the MAX_LISTED shown);
    rejecting leaves them all out, not asked again; denied entries are never applied."""
    from swarmd.agent import changes
    from swarmd.agent.approvals import RESOLUTIONS
    from swarmd.agent.loop import AgentOutcome
    ac, ws, tree = copy
    pol = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    pol = pol.model_copy(update={"sandbox": pol.sandbox.model_copy(update={"max_changeset_entries": 10})})
    monkeypatch.setattr(changes, "MAX_LISTED", 5)
    (tree / "many").mkdir()
    for i in range(12):
        (tree / "many" / f"f{i}").write_text(f"{i}\n")
    (tree / "sub" / ".git").mkdir(parents=True)
    out = changes.approval_point(ac, pol, AgentOutcome("done", {"answer": "ok"}, loop={"steps": 1}))
    assert out.state == "awaiting_approval" and out.pending[1]["whole_set"] == 14
    assert len(out.pending[1]["changes"]) == 5 and not (ws / "many").exists()
    decision, rule = RESOLUTIONS[resolution]
    record = {"tool": out.pending[0], "args": out.pending[1], "loop": out.loop,
              "resolution": {"decision": resolution, "by": "t", "ts": 0, "rule": rule, "reason": "r"}}
    done = changes.approval_point(ac, pol, changes.resume_changes(ac, pol, record))
    assert (done.state, done.pending) == ("done", None)
    got = sorted(p.name for p in (ws / "many").iterdir()) if (ws / "many").exists() else []
    assert got == (sorted(f"f{i}" for i in range(12)) if resolution == "approve" else [])
    assert not (ws / "sub" / ".git").exists()


def test_kept_share_matches_common_ends_first():
    """An append to a file of many equal lines keeps it all (found without difflib, which is
    quadratic there); gutting it keeps what is left; a middle edit is measured by difflib."""
    from swarmd.governor.workspace import _kept_share
    filler = b"# filler\n" * 400
    assert _kept_share(filler, filler + b"# edit\n") == 1.0
    assert _kept_share(filler, b"# filler\n" * 100) == 0.25
    old = b"".join(b"line %d\n" % i for i in range(10))
    new = old.replace(b"line 1\n", b"").replace(b"line 8\n", b"other text entirely\n")
    assert _kept_share(old, new) == 0.8       # 8 of 10 kept: one deleted, one replaced by unlike text
    # common ends already over DESTRUCTIVE_KEEP: that lower bound (6 of 10), not difflib's 8
    assert _kept_share(old, old.replace(b"line 3\n", b"").replace(b"line 6\n", b"unlike\n")) == 0.6
