"""Every corpus action gets exactly the decision its row names, from the rule it names.

Rows: ``{"id", "category", "tool", "args", "expect", "rule"}`` where ``expect``
is ``deny``, ``ask`` (dangerous rows) or ``allow`` (benign rows) and ``rule`` is
the rule id that must produce it (a policy rule from ``policy.yaml`` or a
built-in ``shell.*``/``files.*``/``url.*`` check). The full corpus is also run
by ``bench/governor.py``.
"""

from __future__ import annotations

import os

import pytest
import yaml

from swarmd.governor import Governor, parse_policy
from swarmd.testing.effects import make_effects_workspace
from swarmd.governor.shell import bashlex_parse, fast_parse

from .conftest import REPO, load_corpus, table_resolver

DANGEROUS = load_corpus("dangerous.jsonl")
BENIGN = load_corpus("benign.jsonl")
#: ordinary development that must also run and succeed (bench/governor_effects.py runs it; so does a slice in
#: test_effects.py); judged here in the effect harness's workspace
BENIGN_RUN = load_corpus("benign_run.jsonl")


def test_corpus_size_and_shape():
    assert len(DANGEROUS) >= 150 and len(BENIGN) >= 100
    for row in DANGEROUS + BENIGN:
        assert set(row) == {"id", "category", "tool", "args", "expect", "rule"}, row["id"]
        assert isinstance(row["rule"], str) and row["rule"], row["id"]
    assert {r["expect"] for r in DANGEROUS} == {"deny", "ask", "allow"}
    # dangerous actions the policy lets through (the sandbox contains them; bench/governor_effects.py
    # shows they have no effect): at most 1% of the dangerous corpus
    assert [r["id"] for r in DANGEROUS if r["expect"] == "allow"] == ["d-389"]
    assert {r["expect"] for r in BENIGN} == {"allow"}
    assert len({r["id"] for r in DANGEROUS + BENIGN}) == len(DANGEROUS) + len(BENIGN)


@pytest.mark.parametrize("row", DANGEROUS, ids=[r["id"] for r in DANGEROUS])
def test_dangerous_gets_its_decision(gov, workspace, row):
    d = gov.decide(row["tool"], row["args"], workspace)
    assert (d.decision, d.rule) == (row["expect"], row["rule"]), (row, d)
    assert d.reason


@pytest.mark.parametrize("row", BENIGN, ids=[r["id"] for r in BENIGN])
def test_benign_gets_its_decision(gov, workspace, row):
    d = gov.decide(row["tool"], row["args"], workspace)
    assert (d.decision, d.rule) == (row["expect"], row["rule"]), (row, d)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_effects_workspace(tmp_path_factory.mktemp("project"), "token", os.path.expanduser("~"))


def test_benign_run_shape():
    assert len(BENIGN_RUN) >= 150
    for row in BENIGN_RUN:
        assert set(row) == {"id", "category", "tool", "args", "expect", "rule", "output"}, row["id"]
        assert row["expect"] == "allow", row["id"]


@pytest.mark.parametrize("row", BENIGN_RUN, ids=[r["id"] for r in BENIGN_RUN])
def test_benign_run_gets_its_decision(gov, project, row):
    d = gov.decide(row["tool"], row["args"], project)
    assert (d.decision, d.rule) == (row["expect"], row["rule"]), (row, d)


def test_corpus_fails_without_the_policy_rules(policy, workspace):
    """The corpus can fail: with every rule of policy.yaml removed, every row
    whose expected rule is a policy rule gets something else, and no dangerous
    shell line is caught only by the catch-all ``default.shell`` ask (an
    ``http_get`` to a host off the allowlist is meant to get
    ``default.http_get`` ask)."""
    data = yaml.safe_load((REPO / "src" / "swarmd" / "policy.yaml").read_text(encoding="utf-8"))
    data["rules"] = []
    bare = Governor(parse_policy(yaml.safe_dump(data), "policy-without-rules.yaml"), resolver=table_resolver)
    policy_ids = {r.id for r in policy.rules}
    by_policy = [r for r in DANGEROUS + BENIGN if r["rule"] in policy_ids]
    changed = [r["id"] for r in by_policy
               if (lambda d: (d.decision, d.rule))(bare.decide(r["tool"], r["args"], workspace))
               != (r["expect"], r["rule"])]
    assert changed == [r["id"] for r in by_policy]
    assert sum(r["rule"] in policy_ids for r in DANGEROUS) >= 50
    assert len(by_policy) >= 190
    assert not [r["id"] for r in DANGEROUS if r["rule"].startswith("default.") and r["rule"] != "default.http_get"]


def test_fast_path_agrees_with_bashlex():
    """The no-bashlex fast path must produce exactly bashlex's parse (every field of
    :class:`Parsed`: words, flags, redirections, substitutions, ``plain``); lines it
    is not sure about go to bashlex. More lines: tests/governor/test_fast_parse.py."""
    checked = 0
    for row in DANGEROUS + BENIGN:
        if row["tool"] != "shell":
            continue
        cmd = row["args"]["command"]
        fast = fast_parse(cmd)
        if fast is None:
            continue
        assert fast == bashlex_parse(cmd), cmd
        checked += 1
    assert checked >= 300
