"""Retrieval of verified examples similar to an input: vector, BM25 and hybrid search.

The pool is the learning memory's verified records with a known answer, of
one action and one label set (:mod:`swarmd.memory.records`).  Three ways to
rank it for an input:

* ``vector`` — cosine of all-MiniLM-L6-v2 embeddings (:mod:`swarmd.memory.embed`)
  in a :class:`~swarmd.memory.vectors.base.VectorIndex` (embedded HNSW by
  default, Qdrant with ``memory.qdrant_url``), one collection per action and
  label set (:func:`collection_name`);
* ``bm25`` — SQLite FTS5's BM25 over the inputs (table ``verified_fts``,
  migration 11, kept in step with the records by triggers);
* ``hybrid`` — reciprocal rank fusion of the two: score = Σ 1 / (``RRF_K`` + rank),
  ranks from 1 (Cormack, Clarke & Büttcher 2009; their k = 60).

Which works best for retrieving same-label commit messages is measured by
``bench/retrieval.py`` (its retrieval table).  The vector index is filled by
:meth:`Retriever.sync` / :meth:`Retriever.sync_all` (records not yet indexed
are embedded): the daemon runs it every few seconds and after each
consolidation (:mod:`swarmd.daemon.memory_jobs`), so it is the one writer of
the index files; workers only read them and reload a newer file (the HNSW
backend checks its modification time), so a verified record reaches their
prompts within seconds, without a restart.  Ids of records pruned since are
dropped when results are resolved against SQLite.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from swarmd.memory.records import Memory, label_key, normalise_input
from swarmd.memory.vectors.base import VectorIndex

MODES = ("vector", "bm25", "hybrid")
#: reciprocal rank fusion constant (the published default)
RRF_K = 60
#: candidates each ranking contributes before fusion, per result wanted
FANOUT = 4
#: query terms kept for BM25 (the rarest ones).  Commitizen leave-one-out, BM25
#: top 8 (P@1 / rank-weighted vote accuracy): 8 terms 0.443/0.488, 12 terms
#: 0.435/0.477, 24 terms 0.465/0.510, 48 terms the same as 24
MAX_TERMS = 24
#: a BM25 query term in more than this share of the records (and at least
#: COMMON_MIN records) is dropped: on 100,000 records such terms cost most of
#: the query's time (bench/retrieval.py) and, with a low IDF, move little
COMMON_SHARE = 0.05
COMMON_MIN = 1000
#: FTS matches ranked per result wanted before filtering by action and label set
BM25_FANOUT = 8
_TERM = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Example:
    """A retrieved verified record: its row ``id``, ``input``, verified ``answer``
    and the ``score`` it was ranked by (cosine, BM25 relevance or fused RRF)."""

    id: int
    input: str
    answer: str
    score: float


def collection_name(action: str, labels) -> str:
    """The vector collection of (action, label set): ``<action>-<10 hex of sha1(label key)>``
    (label order does not matter; the action's characters outside ``[A-Za-z0-9_.-]`` become ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", action)[:100]
    return f"{safe}-{hashlib.sha1(label_key(labels).encode()).hexdigest()[:10]}"


def fts_query(text: str, doc_freq: dict[str, int] | None = None, max_df: float = float("inf")) -> str | None:
    """An FTS5 MATCH expression for ``text``: its distinct word tokens, each
    quoted, joined by ``OR``; ``None`` without any word.

    With ``doc_freq`` (term → number of records containing it), terms in more
    than ``max_df`` records are dropped and the :data:`MAX_TERMS` rarest kept
    (terms not in ``doc_freq``, e.g. inflected forms the stemmer changed,
    count as rare): a common term adds little to BM25 (low IDF) but its
    whole posting list is scored.  Without it, the first :data:`MAX_TERMS`.
    """
    terms = list(dict.fromkeys(t.casefold() for t in _TERM.findall(text)))
    if doc_freq is not None:
        terms = sorted((t for t in terms if doc_freq.get(t, 0) <= max_df), key=lambda t: doc_freq.get(t, 0))
    terms = terms[:MAX_TERMS]
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _doc_freq(memory: Memory, text: str) -> tuple[dict[str, int], int]:
    """Document frequency of ``text``'s terms in ``verified_fts`` and the number of
    records, through a per-connection ``fts5vocab`` table (``temp.verified_fts_terms``)."""
    terms = list(dict.fromkeys(t.casefold() for t in _TERM.findall(text)))[:256]
    conn = memory.conn
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.verified_fts_terms "
                 "USING fts5vocab(main, 'verified_fts', 'row')")
    freq = dict(conn.execute(f"SELECT term, doc FROM temp.verified_fts_terms WHERE term IN "
                             f"({','.join('?' * len(terms))})", terms).fetchall()) if terms else {}
    total = conn.execute("SELECT MAX(rowid) FROM verified_outcomes").fetchone()[0] or 0
    return freq, total


def bm25_ranking(memory: Memory, action: str, labels, text: str, k: int,
                 exclude_norm: str | None = None) -> list[tuple[int, float]]:
    """Up to ``k`` (record id, relevance) by FTS5 BM25, best first (relevance =
    −``bm25()``, higher is better), among records of ``action`` and ``labels``
    with an answer; ``exclude_norm``: leave out records of this normalised input.

    The query keeps the rarest terms (:func:`fts_query`; terms in more than
    :data:`COMMON_SHARE` of the records, and at least :data:`COMMON_MIN`
    records, are dropped).  The FTS table ranks its best ``BM25_FANOUT × k``
    matches first and those are filtered by action and label set; when that
    leaves fewer than ``k`` (other actions' records dominate the matches) the
    filter runs over every match instead.
    """
    with memory.lock:
        freq, total = _doc_freq(memory, text)
        query = fts_query(text, freq, max(COMMON_MIN, COMMON_SHARE * total))
        if query is None:
            return []
        params = (action, label_key(labels), exclude_norm or "")
        where = "v.action = ? AND v.label_key = ? AND v.answer IS NOT NULL AND v.input_norm != ?"
        rows = memory.conn.execute(
            "SELECT v.id, f.s FROM (SELECT rowid, bm25(verified_fts) AS s FROM verified_fts WHERE verified_fts "
            f"MATCH ? ORDER BY s LIMIT ?) f JOIN verified_outcomes v ON v.id = f.rowid WHERE {where} "
            "ORDER BY f.s LIMIT ?", (query, BM25_FANOUT * k, *params, k)).fetchall()
        if len(rows) < k:
            rows = memory.conn.execute(
                "SELECT v.id, bm25(verified_fts) AS s FROM verified_fts JOIN verified_outcomes v "
                f"ON v.id = verified_fts.rowid WHERE verified_fts MATCH ? AND {where} ORDER BY s LIMIT ?",
                (query, *params, k)).fetchall()
    return [(int(i), -float(s)) for i, s in rows]


def rrf(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of id rankings (each best first): (id, Σ 1/(k + rank)), best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    """Search the verified examples of a :class:`~swarmd.memory.records.Memory`.

    ``embedder``: an object with ``embed(list[str]) -> n × dim`` unit vectors
    (:class:`swarmd.memory.embed.Embedder`); ``open_index(name, dim)``: returns
    the :class:`VectorIndex` of a collection (see :func:`swarmd.memory.vectors.open_index`).
    Either may be ``None`` for BM25 only.  Thread-safe as far as its parts are.
    """

    def __init__(self, memory: Memory, embedder=None,
                 open_index: Callable[[str, int], VectorIndex] | None = None, dim: int = 384):
        self.memory = memory
        self.embedder = embedder
        self._open_index = open_index
        self.dim = dim
        self._indexes: dict[str, VectorIndex] = {}
        self._synced: tuple | None = None

    def index(self, action: str, labels) -> VectorIndex:
        """The vector index of (action, labels), opened once."""
        name = collection_name(action, labels)
        if name not in self._indexes:
            if self._open_index is None:
                raise ValueError("this Retriever has no vector index (open_index=None): use mode 'bm25'")
            self._indexes[name] = self._open_index(name, self.dim)
        return self._indexes[name]

    def sync(self, action: str, labels, batch: int = 256) -> int:
        """Embed and index the records of (action, labels) with an answer that
        the index lacks; returns how many were added (0 when up to date)."""
        with self.memory.lock:
            rows = self.memory.conn.execute(
                "SELECT id FROM verified_outcomes WHERE action=? AND label_key=? AND answer IS NOT NULL ORDER BY id",
                (action, label_key(labels))).fetchall()
        index = self.index(action, labels)
        todo = index.missing([r[0] for r in rows])
        for start in range(0, len(todo), batch):
            ids = todo[start:start + batch]
            with self.memory.lock:
                marks = ",".join("?" * len(ids))
                texts = dict(self.memory.conn.execute(
                    f"SELECT id, input FROM verified_outcomes WHERE id IN ({marks})", ids).fetchall())
            ids = [i for i in ids if i in texts]
            index.upsert(ids, self.embedder.embed([texts[i] for i in ids]))
        index.flush()
        return len(todo)

    def sync_all(self) -> int:
        """:meth:`sync` of every (action, label set) with answered records and
        a non-empty label set (retrieved examples go into label prompts only);
        returns how many records were embedded.  Does nothing, at the cost of
        one query, when no record was added or removed since the last call."""
        with self.memory.lock:
            stamp = self.memory.conn.execute(
                "SELECT COUNT(*), MAX(id) FROM verified_outcomes WHERE answer IS NOT NULL").fetchone()
            if tuple(stamp) == self._synced:
                return 0
            groups = self.memory.conn.execute("SELECT DISTINCT action, label_key FROM verified_outcomes "
                                              "WHERE answer IS NOT NULL AND label_key != ''").fetchall()
        added = sum(self.sync(action, tuple(key.split(","))) for action, key in groups)
        self._synced = tuple(stamp)
        return added

    def search(self, action: str, labels, text: str, k: int = 4, mode: str = "hybrid",
               vector: np.ndarray | None = None, exclude_same_input: bool = True) -> list[Example]:
        """Up to ``k`` verified examples of (action, labels) nearest to ``text``, best first.

        ``mode``: one of :data:`MODES`.  ``vector``: ``text``'s embedding when
        the caller has it (else it is computed here).  ``exclude_same_input``:
        leave out records whose normalised input equals ``text``'s (those are
        the answer cache's business, and a prompt showing the answer to the
        very input measures nothing).  Raises ``ValueError`` for an unknown mode.
        """
        if mode not in MODES:
            raise ValueError(f"retrieval mode {mode!r}: expected one of {', '.join(MODES)}")
        norm = normalise_input(text) if exclude_same_input else None
        want = k * FANOUT if mode == "hybrid" else k * 2      # spare room for pruned or excluded ids
        rankings: list[list[tuple[int, float]]] = []
        if mode in ("vector", "hybrid"):
            if vector is None:
                vector = self.embedder.embed([text])[0]
            rankings.append([(n.id, n.score) for n in self.index(action, labels).search(vector, want)])
        if mode in ("bm25", "hybrid"):
            rankings.append(bm25_ranking(self.memory, action, labels, text, want, norm))
        ranked = rrf([[i for i, _s in r] for r in rankings]) if mode == "hybrid" else rankings[0]
        return self._resolve(ranked, k, action, labels, norm)

    def _resolve(self, ranked: list[tuple[int, float]], k: int, action: str, labels, norm: str | None) -> list[Example]:
        if not ranked:
            return []
        ids = [i for i, _s in ranked]
        with self.memory.lock:
            rows = self.memory.conn.execute(
                f"SELECT id, input, answer, input_norm FROM verified_outcomes WHERE id IN ({','.join('?' * len(ids))}) "
                "AND action=? AND label_key=? AND answer IS NOT NULL", (*ids, action, label_key(labels))).fetchall()
        found = {r[0]: r for r in rows if norm is None or r[3] != norm}
        return [Example(i, found[i][1], found[i][2], s) for i, s in ranked if i in found][:k]

    def close(self) -> None:
        """Flush and close the opened indexes."""
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
