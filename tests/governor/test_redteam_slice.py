"""A slice of the red team (the whole corpus: ``bench/redteam.py``), on real bubblewrap.

Two attacks of each kind from ``corpus/redteam.jsonl`` run through ``swarmctl policy run`` in a
throwaway root with canaries, then the operator's plain git (:mod:`swarmd.testing.redteam`): each must
have no effect at all; a few benign rows must be allowed and succeed, with no effect. A self-check row
(the harness itself plants a hook) must show the operator's commit running it, so a harness that sees
nothing fails too. Each row's goal is checked against the text below, so renumbered rows are caught.
"""

from __future__ import annotations

import shutil

import pytest

from swarmd.jsonl import read_jsonl
from swarmd.testing.effects import cannot_run
from swarmd.testing.redteam import check_row, run_shards

from .conftest import CORPUS, REPO

pytestmark = [
    pytest.mark.skipif(cannot_run() is not None, reason=str(cannot_run())),
    pytest.mark.skipif(not (shutil.which("unshare") and shutil.which("ip") and shutil.which("openssl")),
                       reason="needs unshare, ip and openssl for the throwaway root"),
    # the throwaway roots run ~31 rows through swarmctl (about 1-3 s each on 2 busy cores)
    pytest.mark.timeout(600),
]

#: id -> words of its goal: two attacks per kind, each one that had an effect before issue 21's fix
ATTACKS = {
    "rt-x001": "separate-git-dir",
    "rt-x036": "tarball drops a nested repository",
    "rt-s001": "plain git diff",
    "rt-s019": "git remote -v",
    "rt-i001": "lists the operator's key names",
    "rt-i004": "sibling workspaces",
    "rt-h003": "FIFO made by a workspace script",
    "rt-h017": "fsmonitor that sleeps",
    "rt-e001": "200k empty files",
    "rt-e011": "/dev/shm by a script",
    "rt-d001": "tar --remove-files",
    "rt-d009": "git checkout -- DIR",
    "rt-p001": "setuid bit by a workspace script",
    "rt-p017": "root on the host",
    "rt-n001": "readthedocs.io",
    "rt-n020": "redirects to a publishable host",
    # the copy with history (session 2): git stash / sed of the operator's uncommitted line ask
    "rt-s015": "git stash show -p",
    "rt-d035": "rewrites the operator's uncommitted line",
}
BENIGN = {"rt-b001": "list the workspace", "rt-b048": "make test", "rt-b063": "git status",
          "rt-b086": "git add and commit a new file", "rt-b090": "GET python docs",
          # failed before session 2: the copy had no history, no absolute path, no `cd DIR && ../`
          "rt-b065": "git log --oneline", "rt-b079": "git diff HEAD~1", "rt-b018": "absolute workspace path",
          "rt-b049": "unittest directly"}
SELF_CHECK = {"id": "rt-selfcheck", "kind": "host-exec", "goal": "the harness plants a pre-commit hook itself",
              "fixture": "planted-hook", "actions": [{"id": 1, "tool": "shell", "args": {"command": "true"}}]}


@pytest.fixture(scope="module")
def results():
    rows = {r["id"]: r for r in read_jsonl(CORPUS / "redteam.jsonl", check_row)}
    for rid, words in {**ATTACKS, **BENIGN}.items():
        assert words in rows[rid]["goal"], (rid, rows[rid]["goal"])
    picked = [rows[i] for i in (*ATTACKS, *BENIGN)] + [check_row(dict(SELF_CHECK))]
    return {r.id: r for r in run_shards(picked, str(REPO / "src" / "swarmd" / "policy.yaml"), procs=2, action_timeout_s=5)}


@pytest.mark.parametrize("rid", list(ATTACKS))
def test_attack_has_no_effect(results, rid):
    r = results[rid]
    assert r.effects == {}, (rid, r.effects, r.actions)


@pytest.mark.parametrize("rid", list(BENIGN))
def test_benign_is_allowed_and_succeeds(results, rid):
    r = results[rid]
    assert r.ok and r.effects == {}, (rid, r.effects, r.actions)


def test_harness_sees_a_hook_run_by_the_operators_commit(results):
    r = results["rt-selfcheck"]
    assert "exec" in r.effects and "uid=0" in r.effects["exec"], r.effects
    assert [o["argv"] for o in r.operator] == ["git status", "git diff", "git log -p", "git commit -am x"]
