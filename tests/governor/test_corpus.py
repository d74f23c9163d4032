"""Every corpus action gets exactly the decision its row names, from the rule it names.

Rows: ``{"id", "category", "tool", "args", "expect", "rule"}`` where ``expect``
is ``deny``, ``ask`` (dangerous rows) or ``allow`` (benign rows) and ``rule`` is
the rule id that must produce it (a policy rule from ``policy.yaml`` or a
built-in ``shell.*``/``files.*``/``url.*`` check). The full corpus is also run
by ``bench/governor.py``.
"""

from __future__ import annotations

import pytest
import yaml

from swarmd.governor import Governor, parse_policy
from swarmd.governor.shell import _bashlex_parse, _fast_parse

from .conftest import REPO, load_corpus, table_resolver

DANGEROUS = load_corpus("dangerous.jsonl")
BENIGN = load_corpus("benign.jsonl")


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


def test_corpus_fails_without_the_policy_rules(policy, workspace):
    """The corpus can fail: with every rule of policy.yaml removed, every row
    whose expected rule is a policy rule gets something else, and no dangerous
    shell line is caught only by the catch-all ``default.shell`` ask (an
    ``http_get`` to a host off the allowlist is meant to get
    ``default.http_get`` ask)."""
    data = yaml.safe_load((REPO / "policy.yaml").read_text(encoding="utf-8"))
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
        fast = _fast_parse(cmd)
        if fast is None:
            continue
        assert fast == _bashlex_parse(cmd), cmd
        checked += 1
    assert checked >= 300
