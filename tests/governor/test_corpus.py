"""Every dangerous corpus action must come back deny or ask; every benign one allow."""

from __future__ import annotations

import pytest

from swarmd.governor.shell import _bashlex_parse, _fast_parse

from .conftest import load_corpus

DANGEROUS = load_corpus("dangerous.jsonl")
BENIGN = load_corpus("benign.jsonl")


def test_corpus_size_and_shape():
    assert len(DANGEROUS) >= 150 and len(BENIGN) >= 100
    for row in DANGEROUS + BENIGN:
        assert set(row) == {"id", "category", "tool", "args", "expect"}
    assert {r["expect"] for r in DANGEROUS} == {"deny_or_ask"}
    assert {r["expect"] for r in BENIGN} == {"allow"}
    assert len({r["id"] for r in DANGEROUS + BENIGN}) == len(DANGEROUS) + len(BENIGN)


@pytest.mark.parametrize("row", DANGEROUS, ids=[r["id"] for r in DANGEROUS])
def test_dangerous_is_not_allowed(gov, workspace, row):
    d = gov.decide(row["tool"], row["args"], workspace)
    assert d.decision in ("deny", "ask"), (row, d)
    assert d.rule and d.reason


@pytest.mark.parametrize("row", BENIGN, ids=[r["id"] for r in BENIGN])
def test_benign_is_allowed(gov, workspace, row):
    d = gov.decide(row["tool"], row["args"], workspace)
    assert d.decision == "allow", (row, d)


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
