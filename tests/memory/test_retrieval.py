"""Retrieval of verified examples: BM25 over the FTS5 table (kept in step with
the records by triggers, filled for records older than its migration), vector
search with the real embedder and HNSW index, hybrid by reciprocal rank fusion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmd.memory.embed import MODEL_ID, Embedder
from swarmd.memory.records import Memory, Verified
from swarmd.memory.retrieval import Retriever, bm25_ranking, collection_name, fts_query, rrf
from swarmd.memory.vectors import open_index
from swarmd.store.db import connect
from swarmd.store.schema import MIGRATIONS, migrate

DATA = Path(__file__).resolve().parents[2] / "examples" / "commits-commitizen.jsonl"
LABELS = ("build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test")


def _commits(n: int) -> list[dict]:
    lines = DATA.read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def _fill(memory: Memory, items, labels=LABELS, action="classify") -> None:
    memory.add_many([Verified(action, labels, it["text"], it["label"], "human", objective_id=it["id"])
                     for it in items])


def test_fts_query_quotes_every_term():
    assert fts_query('fix "quoted" AND NOT x-y') == '"fix" OR "quoted" OR "and" OR "not" OR "x" OR "y"'
    assert fts_query("the fix of the parser", {"the": 900, "of": 800, "fix": 40}, max_df=500) == '"parser" OR "fix"'
    assert fts_query("  ...  ") is None


def test_rrf_rewards_agreement():
    fused = rrf([[1, 2, 3], [3, 1, 4]])
    assert [i for i, _s in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_bm25_finds_records_of_the_action_and_label_set_only(memory):
    _fill(memory, [{"id": "a", "text": "fix crash in the changelog generator", "label": "fix"},
                   {"id": "b", "text": "add a changelog template option", "label": "feat"},
                   {"id": "c", "text": "update the README badges", "label": "docs"}])
    _fill(memory, [{"id": "d", "text": "fix changelog crash", "label": "fix"}], labels=("fix", "feat"))
    found = bm25_ranking(memory, "classify", LABELS[::-1], "changelog crash", 5)
    assert [memory.conn.execute("SELECT objective_id FROM verified_outcomes WHERE id=?", (i,)).fetchone()[0]
            for i, _s in found] == ["a", "b"]
    assert found[0][1] > found[1][1] > 0
    assert bm25_ranking(memory, "classify", LABELS, "!!!", 5) == []


def test_bm25_still_finds_a_label_set_outnumbered_by_others(memory):
    _fill(memory, [{"id": f"o{i}", "text": f"changelog crash number {i}", "label": "fix"} for i in range(60)],
          labels=("fix", "feat"))
    _fill(memory, [{"id": "mine", "text": "a crash somewhere in the changelog code path", "label": "fix"}])
    found = bm25_ranking(memory, "classify", LABELS, "changelog crash", 5)
    assert len(found) == 1         # the 40 best matches are all of the other label set: the fallback finds it


def test_fts_follows_deletes_and_updates(memory):
    _fill(memory, [{"id": "a", "text": "tweak the bumping logic", "label": "fix"}])
    memory.conn.execute("UPDATE verified_outcomes SET input='rewrite the changelog parser'")
    assert bm25_ranking(memory, "classify", LABELS, "bumping", 5) == []
    assert len(bm25_ranking(memory, "classify", LABELS, "parser", 5)) == 1
    memory.conn.execute("DELETE FROM verified_outcomes")
    assert bm25_ranking(memory, "classify", LABELS, "parser", 5) == []
    assert memory.conn.execute("SELECT COUNT(*) FROM verified_fts WHERE verified_fts MATCH 'parser'").fetchone()[0] == 0


def test_migration_indexes_records_written_before_it(tmp_path):
    path = tmp_path / "old.db"
    conn = connect(path)
    migrate(conn, MIGRATIONS[:10])                    # the schema before the FTS table
    row = Verified("classify", LABELS, "drop python 3.8 support", "build", "human", objective_id="o").row()
    row.pop("local_prompt")                           # a column of a later migration (12)
    conn.execute(f"INSERT INTO verified_outcomes ({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                 list(row.values()))
    conn.close()
    memory = Memory(path)                             # migrates to the current schema
    try:
        assert len(bm25_ranking(memory, "classify", LABELS, "python support", 5)) == 1
    finally:
        memory.close()


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_vector_and_hybrid_search_with_the_real_embedder(memory, tmp_path, embedder):
    items = _commits(200)
    _fill(memory, items)
    retriever = Retriever(memory, embedder, lambda name, dim: open_index(
        name, dim, data_dir=tmp_path, model_id=MODEL_ID))
    assert retriever.sync("classify", LABELS) == 200
    assert retriever.sync("classify", LABELS) == 0          # up to date: nothing embedded again
    query = "Bump the version of GitPython used by the project"
    for mode in ("vector", "bm25", "hybrid"):
        found = retriever.search("classify", LABELS, query, k=4, mode=mode)
        assert len(found) == 4 and any("gitpython" in e.input.casefold() for e in found), mode
        assert found[0].score == max(e.score for e in found)
    assert "gitpython" in retriever.search("classify", LABELS, query, k=1, mode="vector")[0].input
    exact = retriever.search("classify", LABELS, items[0]["text"], k=3, mode="vector")
    assert items[0]["text"] not in [e.input for e in exact]            # the input itself is left out
    memory.conn.execute("DELETE FROM verified_outcomes WHERE objective_id=?", (items[1]["id"],))
    gone = retriever.search("classify", LABELS, items[1]["text"], k=10, mode="hybrid",
                            exclude_same_input=False)
    assert items[1]["text"] not in [e.input for e in gone]             # pruned records are dropped
    retriever.close()
    assert (tmp_path / "vectors" / MODEL_ID / f"{collection_name('classify', LABELS)}.hnsw").exists()
    with pytest.raises(ValueError, match="retrieval mode 'dense'"):
        retriever.search("classify", LABELS, query, mode="dense")
