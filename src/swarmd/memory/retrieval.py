"""Retrieval of verified examples similar to an input: vector, BM25 and hybrid search.

The pool is the verified records with a known answer of one action and label set.  Ways
to rank it: ``vector`` (cosine of all-MiniLM-L6-v2 embeddings in a
:class:`~swarmd.memory.vectors.base.VectorIndex`, embedded HNSW by default or Qdrant with
``memory.qdrant_url``, one collection per action and label set: :func:`collection_name`),
``bm25`` (:class:`swarmd.memory.bm25.Bm25Index`) and ``hybrid`` (reciprocal rank fusion:
score = Σ 1 / (:data:`RRF_K` + rank), ranks from 1; Cormack, Clarke & Büttcher 2009).

:meth:`Retriever.sync` / :meth:`Retriever.sync_all` embed records not yet indexed; the
daemon runs them (it is the one writer of the index files) and workers reload a newer
file.  Ids of records pruned since are dropped when results are resolved against SQLite.
Which ranking works best: docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from swarmd.memory.bm25 import Bm25Index
from swarmd.memory.records import Memory, label_key, normalise_input
from swarmd.memory.vectors.base import VectorIndex

MODES = ("vector", "bm25", "hybrid")
#: reciprocal rank fusion constant (the published default)
RRF_K = 60
#: candidates each ranking contributes before fusion, per result wanted
FANOUT = 4
#: the most candidates a search asks a ranking for when same-input or pruned records crowd them out
MAX_WANT = 1024


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

    #: the class of the BM25 indexes (a seam: tests hold a background rebuild with a subclass)
    bm25_index = Bm25Index

    def __init__(self, memory: Memory, embedder=None,
                 open_index: Callable[[str, int], VectorIndex] | None = None, dim: int = 384):
        self.memory = memory
        self.embedder = embedder
        self._open_index = open_index
        self.dim = dim
        self._indexes: dict[str, VectorIndex] = {}
        self._synced: tuple | None = None
        self._bm25: dict[str, Bm25Index] = {}
        self._lock = threading.Lock()

    def index(self, action: str, labels) -> VectorIndex:
        """The vector index of (action, labels), opened once."""
        name = collection_name(action, labels)
        if name not in self._indexes:
            if self._open_index is None:
                raise ValueError("this Retriever has no vector index (open_index=None): use mode 'bm25'")
            self._indexes[name] = self._open_index(name, self.dim)
        return self._indexes[name]

    def bm25(self, action: str, labels) -> Bm25Index:
        """The BM25 index of (action, labels), built on its first search."""
        name = collection_name(action, labels)
        with self._lock:
            if name not in self._bm25:
                self._bm25[name] = self.bm25_index(self.memory, action, labels)
            return self._bm25[name]

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
        one query, when no record was added or removed since the last call,
        and returns 0 without an embedder (BM25 only: nothing to embed)."""
        if self.embedder is None:
            return 0
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
        very input measures nothing).  When such or pruned records take the
        candidates' room, each ranking is asked again for 4× as many, up to
        :data:`MAX_WANT`.  Raises ``ValueError`` for an unknown mode.
        """
        if mode not in MODES:
            raise ValueError(f"retrieval mode {mode!r}: expected one of {', '.join(MODES)}")
        norm = normalise_input(text) if exclude_same_input else None
        want = k * FANOUT if mode == "hybrid" else k * 2      # spare room for pruned or excluded ids
        if mode in ("vector", "hybrid") and vector is None:
            vector = self.embedder.embed([text])[0]
        while True:
            rankings: list[list[tuple[int, float]]] = []
            if mode in ("vector", "hybrid"):
                rankings.append([(n.id, n.score) for n in self.index(action, labels).search(vector, want)])
            if mode in ("bm25", "hybrid"):
                bm25 = self.bm25(action, labels)
                rankings.append(bm25.search(text, want))
            ranked = rrf([[i for i, _s in r] for r in rankings]) if mode == "hybrid" else rankings[0]
            rows = self._rows([i for i, _s in ranked], action, labels)
            gone = [i for i, _s in rankings[-1] if i not in rows] if mode in ("bm25", "hybrid") else []
            if gone:
                bm25.invalidate(gone)             # ranked records are gone (pruned): rebuild (in the background)
            found = {i: r for i, r in rows.items() if norm is None or r[2] != norm}
            short = max(len(r) for r in rankings) == want and sum(i in found for i, _s in ranked) < k
            if not short or want >= MAX_WANT:   # every ranking ran out, or enough survived
                return [Example(i, found[i][0], found[i][1], s) for i, s in ranked if i in found][:k]
            want *= 4                             # same-input or pruned records took the room: ask for more

    def _rows(self, ids: list[int], action: str, labels) -> dict[int, tuple[str, str, str]]:
        """``id → (input, answer, input_norm)`` of those of ``ids`` still in the
        memory with ``action``, ``labels`` and an answer."""
        if not ids:
            return {}
        with self.memory.lock:
            rows = self.memory.conn.execute(
                f"SELECT id, input, answer, input_norm FROM verified_outcomes WHERE id IN ({','.join('?' * len(ids))}) "
                # "+": look the ids up by rowid; SQLite would otherwise pick the (action, label_key)
                # index and scan the whole collection (60 ms at 100,000 records instead of 0.1)
                "AND +action=? AND +label_key=? AND answer IS NOT NULL", (*ids, action, label_key(labels))).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}

    def close(self) -> None:
        """Flush and close the opened indexes."""
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
