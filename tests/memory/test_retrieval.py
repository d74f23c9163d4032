"""Retrieval of verified examples: BM25 (bm25s; a tiny corpus ranked as computed
by hand, new records found at once, deleted ones dropped), vector search with
the real embedder and HNSW index, hybrid by reciprocal rank fusion."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from pathlib import Path

import pytest

from swarmd.memory.bm25 import Bm25Index
from swarmd.memory.embed import MODEL_ID, Embedder
from swarmd.memory.records import Memory, Verified
from swarmd.memory.retrieval import Retriever, collection_name, rrf
from swarmd.memory.vectors import open_index
from swarmd.store.db import connect
from swarmd.store.schema import MIGRATIONS, migrate
from tests.wait import LONG_S, wait_until

DATA = Path(__file__).resolve().parents[2] / "examples" / "commits-commitizen.jsonl"
LABELS = ("build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test")


def _commits(n: int) -> list[dict]:
    lines = DATA.read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def _fill(memory: Memory, items, labels=LABELS, action="classify") -> None:
    memory.add_many([Verified(action, labels, it["text"], it["label"], "human", objective_id=it["id"])
                     for it in items])


def _objective_ids(memory, found):
    return [memory.conn.execute("SELECT objective_id FROM verified_outcomes WHERE id=?", (i,)).fetchone()[0]
            for i, _s in found]


def test_bm25_ranks_a_tiny_corpus_as_computed_by_hand(memory):
    """Lucene BM25, k1 1.2, b 0.75, stems: N = 3 records of 2, 5 and 3 tokens (avgdl 10/3).
    idf(crash) = ln(1 + 1.5/2.5) = 0.470004 (df 2), idf(parser) = ln(1 + 2.5/1.5) = 0.980829 (df 1).
    p1 (len 2): norm 1.2·(0.25 + 0.75·0.6) = 0.84, (0.470004 + 0.980829)·1/1.84 = 0.788496;
    c2 (crash twice, len 5): norm 1.65, 0.470004·2/3.65 = 0.257537; d3 shares no term."""
    _fill(memory, [{"id": "p1", "text": "Parser crash", "label": "fix"},
                   {"id": "c2", "text": "crash, crash in the changelog", "label": "fix"},
                   {"id": "d3", "text": "update the docs", "label": "docs"}])
    index = Retriever(memory).bm25("classify", LABELS)
    found = index.search("crashes of the PARSER", 5)       # "crashes" stems to "crash"; "the", "of": see below
    assert _objective_ids(memory, found) == ["p1", "c2", "d3"]
    # "the" (df 2: c2, d3) and "of" (df 0) are query terms too: idf(the) = 0.470004
    the_c2, the_d3 = 0.470004 / (1 + 1.65), 0.470004 / (1 + 1.2 * (0.25 + 0.75 * 0.9))
    assert [s for _i, s in found] == pytest.approx([0.788496, 0.257537 + the_c2, the_d3], abs=1e-5)
    assert index.search("parser", 5)[0][1] == pytest.approx(0.980829 / 1.84, abs=1e-5)
    assert index.score_recent(["parser", "crash"], Counter(parser=1, crash=1), 2) == pytest.approx(0.788496, abs=1e-5)
    assert index.search("!!!", 5) == [] and index.search("zebra", 5) == []


def test_bm25_finds_new_records_at_once_and_rebuilds_as_they_grow(memory):
    _fill(memory, [{"id": f"o{i}", "text": f"tweak module {i}", "label": "chore"} for i in range(30)])
    index = Retriever(memory).bm25("classify", LABELS)
    assert index.search("parser", 5) == [] and index.builds == 1
    _fill(memory, [{"id": "new", "text": "rewrite the parser", "label": "refactor"}])
    found = index.search("parser", 5)
    assert _objective_ids(memory, found) == ["new"] and index.builds == 1     # scored apart, no rebuild
    # scored with the index's statistics: N 30 (df 0), avgdl 3; the record has 3 tokens
    assert found[0][1] == pytest.approx(math.log(1 + 30.5 / 0.5) / (1 + 1.2), abs=1e-5)
    _fill(memory, [{"id": "new2", "text": "parser tests", "label": "test"}])
    assert len(index.search("parser", 5)) == 2                              # 2 > 5% of 30: a rebuild starts
    wait_until(lambda: index.builds == 2, LONG_S, "the background rebuild")
    assert len(index) == 32 and not index.building


class HeldIndex(Bm25Index):
    """A :class:`Bm25Index` whose rebuilds (not its first build) wait, once
    they have read the records, until the test sets ``release``."""

    def __init__(self, *args):
        super().__init__(*args)
        self.started, self.release = threading.Event(), threading.Event()

    def _index(self, rows, stemmer=None):
        if self.builds:
            self.started.set()
            assert self.release.wait(30), "the test never released the rebuild"
        return super()._index(rows, stemmer)


def test_a_due_rebuild_runs_in_the_background_while_searches_use_the_old_index(memory):
    _fill(memory, [{"id": f"o{i}", "text": f"tweak module {i}", "label": "chore"} for i in range(40)]
          + [{"id": "old", "text": "parser crash", "label": "fix"}])
    index = HeldIndex(memory, "classify", LABELS)
    assert _objective_ids(memory, index.search("parser", 5)) == ["old"] and index.builds == 1   # first: at once
    _fill(memory, [{"id": "pp", "text": "parser parser", "label": "test"},
                   {"id": "p", "text": "parser", "label": "fix"},
                   {"id": "long", "text": "rewrite the parser module", "label": "refactor"}])
    during = index.search("parser", 5)          # 3 > 5% of 41: a rebuild is due, and held by the test
    assert index.started.wait(10) and index.building and index.builds == 1     # the search did not wait for it
    # the old index (N 41, df 1, avgdl 122/41) and the 3 records written since, scored with its statistics:
    # tf / (tf + 1.2·(0.25 + 0.75·len/avgdl)) decides (one idf): pp 2 of 2 > p 1 of 1 > old 1 of 2 > long 1 of 4
    assert _objective_ids(memory, during) == ["pp", "p", "old", "long"]
    idf = math.log(1 + 40.5 / 1.5)
    assert during[2][1] == pytest.approx(idf / (1 + 1.2 * (0.25 + 0.75 * 2 / (122 / 41))), abs=1e-5)
    assert index.search("parser", 5) == during and index.builds == 1     # again: still the old index, one build
    index.release.set()
    wait_until(lambda: index.builds == 2 and not index.building, LONG_S, "the background rebuild to be swapped in")
    after = index.search("parser", 5)
    fresh = Bm25Index(memory, "classify", LABELS)          # built at once over the same 44 records
    assert after == fresh.search("parser", 5) and after != during and len(index) == 44
    assert _objective_ids(memory, after) == ["pp", "p", "old", "long"]


def test_a_deleted_record_is_never_found_during_or_after_a_background_rebuild(memory):
    class HeldRetriever(Retriever):
        bm25_index = HeldIndex

    _fill(memory, [{"id": f"o{i}", "text": f"tweak module {i}", "label": "chore"} for i in range(20)]
          + [{"id": "a", "text": "tweak the bumping logic", "label": "fix"},
             {"id": "b", "text": "bumping docs", "label": "docs"}])
    retriever = HeldRetriever(memory)
    index = retriever.bm25("classify", LABELS)

    def found():
        return [e.input for e in retriever.search("classify", LABELS, "bumping", k=5, mode="bm25")]

    assert found() == ["bumping docs", "tweak the bumping logic"]
    memory.conn.execute("DELETE FROM verified_outcomes WHERE objective_id='a'")
    assert found() == ["bumping docs"]          # ranked by the index, dropped by the retriever; invalidated
    assert found() == ["bumping docs"] and index.started.wait(10) and index.building    # rebuild held
    memory.conn.execute("DELETE FROM verified_outcomes WHERE objective_id='b'")        # after the build read
    _fill(memory, [{"id": "c", "text": "bumping tests", "label": "test"}])
    assert found() == ["bumping tests"] and index.builds == 1
    index.release.set()
    wait_until(lambda: index.builds == 2, LONG_S, "the background rebuild to be swapped in")
    assert found() == ["bumping tests"]         # its index still holds b, deleted during the build: rebuilt again
    wait_until(lambda: index.builds == 3 and not index.building, LONG_S, "the second rebuild")
    assert found() == ["bumping tests"] and len(index) == 21 and not index.building and index.builds == 3


def test_rrf_rewards_agreement():
    fused = rrf([[1, 2, 3], [3, 1, 4]])
    assert [i for i, _s in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_bm25_finds_records_of_the_action_and_label_set_only(memory):
    _fill(memory, [{"id": "a", "text": "fix crash in the changelog generator", "label": "fix"},
                   {"id": "b", "text": "add a changelog template option", "label": "feat"},
                   {"id": "c", "text": "update the README badges", "label": "docs"}])
    _fill(memory, [{"id": "d", "text": "fix changelog crash", "label": "fix"}], labels=("fix", "feat"))
    _fill(memory, [{"id": "e", "text": "fix changelog crash", "label": "fix"}], action="summarize")
    retriever = Retriever(memory)
    found = retriever.search("classify", LABELS[::-1], "changelog crash", k=5, mode="bm25")
    assert [e.answer for e in found] == ["fix", "feat"]
    assert found[0].score > found[1].score > 0
    assert retriever.search("classify", LABELS, "!!!", k=5, mode="bm25") == []


def test_bm25_leaves_out_same_inputs_however_many(memory):
    _fill(memory, [{"id": f"same{i}", "text": "bump the version", "label": "build"} for i in range(30)]
          + [{"id": "other", "text": "bump version of ruff", "label": "chore"}])
    found = Retriever(memory).search("classify", LABELS, "Bump the  version", k=2, mode="bm25")
    assert [e.input for e in found] == ["bump version of ruff"]      # 30 same inputs ranked first, skipped


def test_bm25_drops_deleted_records_and_rebuilds(memory):
    _fill(memory, [{"id": "a", "text": "tweak the bumping logic", "label": "fix"},
                   {"id": "b", "text": "bumping docs", "label": "docs"}])
    retriever = Retriever(memory)
    assert len(retriever.search("classify", LABELS, "bumping", k=5, mode="bm25")) == 2
    memory.conn.execute("DELETE FROM verified_outcomes WHERE objective_id='a'")
    assert [e.input for e in retriever.search("classify", LABELS, "bumping", k=5, mode="bm25")] == ["bumping docs"]
    index = retriever.bm25("classify", LABELS)
    assert index.builds == 1
    index.search("bumping", 5)                            # the deleted record seen by the search: rebuilt
    wait_until(lambda: index.builds == 2, LONG_S, "the background rebuild")
    assert len(index) == 1


def test_migration_drops_the_fts_index(tmp_path):
    path = tmp_path / "old.db"
    conn = connect(path)
    migrate(conn, MIGRATIONS[:11])                    # the schema with the FTS5 table and its triggers
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'verified_fts%'").fetchone()[0] > 0
    row = Verified("classify", LABELS, "drop python 3.8 support", "build", "human", objective_id="o").row()
    row.pop("local_prompt")                           # a column of a later migration (12)
    conn.execute(f"INSERT INTO verified_outcomes ({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                 list(row.values()))
    conn.close()
    memory = Memory(path)                             # migrates to the current schema
    try:
        assert memory.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'verified_fts%'").fetchone()[0] == 0
        assert len(Retriever(memory).search("classify", LABELS, "python support", k=5, mode="bm25")) == 1
        assert memory.add(Verified("classify", LABELS, "python 3.13 support", "build", "human", objective_id="p"))
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
