"""Every dangerous corpus action must come back deny or ask; every benign one allow."""

from __future__ import annotations

import pytest

from swarmd.governor.shell import _fast_parse, parse_command

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
    """The no-bashlex fast path must produce exactly bashlex's words."""
    checked = 0
    for row in DANGEROUS + BENIGN:
        if row["tool"] != "shell":
            continue
        cmd = row["args"]["command"]
        fast = _fast_parse(cmd)
        if fast is None:
            continue
        parse_command.cache_clear()
        import bashlex
        trees = bashlex.parse(cmd)
        assert len(trees) == 1 and trees[0].kind == "command", cmd
        words = [p.word for p in trees[0].parts]
        assert words == [w.text for w in fast.commands[0].words], cmd
        assert all(p.kind == "word" and not getattr(p, "parts", []) for p in trees[0].parts), cmd
        checked += 1
    assert checked >= 30
