"""Embedded HNSW backend (the default): a faiss ``IndexHNSWFlat`` in one file under the data directory.

Cosine similarity is the inner product of unit vectors (callers store unit vectors, as
:class:`swarmd.memory.embed.Embedder` makes).  A deleted or replaced id is a tombstone,
excluded from searches by an ID selector; the graph is rebuilt without tombstones when
they exceed :data:`REBUILD_TOMBSTONES` of the nodes.  The file (an ``.npz``: the serialised
index and the record id of every node, -1 for tombstones) is written by
:meth:`HnswIndex.flush` to a temporary name and renamed, so a reader never sees half a
file; a reader in another process with nothing unsaved reloads it when its modification
time changes (checked at most every :data:`RELOAD_CHECK_S` seconds).
Why faiss: docs/design.md.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from swarmd.memory.vectors.base import Neighbour, VectorIndex, VectorIndexError

#: graph degree (HNSW's M)
M = 16
#: candidate list while inserting (ef_construction)
EF_CONSTRUCTION = 128
#: candidate list while searching (ef_search): recall@10 against exact search in bench/retrieval.py --ann
EF_SEARCH = 64
#: share of tombstoned nodes above which :meth:`HnswIndex.flush` rebuilds the graph
REBUILD_TOMBSTONES = 0.2
#: seconds between checks of the file for a newer version written by another process
RELOAD_CHECK_S = 2.0


class HnswIndex(VectorIndex):
    """An HNSW index kept in ``path`` (created on the first :meth:`flush`, with
    its parent directories).  Raises :class:`VectorIndexError` when the file
    exists but cannot be read or holds other dimensions."""

    kind = "hnsw"

    def __init__(self, name: str, dim: int, path: str | Path):
        super().__init__(name, dim)
        import faiss  # lazy: optional [local] extra
        self._faiss = faiss
        faiss.omp_set_num_threads(1)       # the cores belong to the local model and the workers
        self.path = Path(path)
        self._lock = threading.RLock()
        self._dirty = False
        self._mtime: float | None = None
        self._checked = 0.0
        self._reset()
        if self.path.exists():
            self._load()

    def _reset(self, index=None, labels: np.ndarray | None = None) -> None:
        if index is None:
            index = self._faiss.IndexHNSWFlat(self.dim, M, self._faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = EF_CONSTRUCTION
        index.hnsw.efSearch = EF_SEARCH       # not kept in the file
        self._index = index
        self._labels = np.full(0, -1, np.int64) if labels is None else labels   # node → record id, -1 deleted
        self._node = {int(r): i for i, r in enumerate(self._labels) if r >= 0}   # record id → node
        self._selector = None

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
            with np.load(self.path) as data:
                index = self._faiss.deserialize_index(data["index"])
                labels = data["labels"].astype(np.int64)
        except Exception as exc:   # zip/npz errors, faiss's RuntimeError on a bad blob
            raise VectorIndexError(f"vector index {self.path}: cannot be read ({type(exc).__name__}: {exc}); "
                                   f"delete it: the next sync rebuilds it from the records") from None
        if index.d != self.dim or index.ntotal != len(labels):
            raise VectorIndexError(f"vector index {self.path} holds {index.d}-dimension vectors, not {self.dim}"
                                   if index.d != self.dim else f"vector index {self.path}: ids do not match nodes")
        self._reset(index, labels)
        self._mtime = mtime

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._dirty or now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self._load()

    def _tombstone(self, ids) -> None:
        for i in ids:
            node = self._node.pop(int(i), None)
            if node is not None:
                self._labels[node] = -1
                self._selector = None
                self._dirty = True

    def upsert(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        v = self._check(vectors, len(ids))
        if len(set(int(i) for i in ids)) != len(ids):
            raise VectorIndexError(f"vector index {self.name}: duplicate ids in one upsert")
        with self._lock:
            self._tombstone(ids)
            start = self._index.ntotal
            self._index.add(v)
            self._labels = np.concatenate([self._labels, np.asarray(ids, dtype=np.int64)])
            self._node.update({int(r): start + k for k, r in enumerate(ids)})
            self._dirty = True

    def delete(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._tombstone(ids)

    def _params(self):
        if self._selector is None:
            dead = np.flatnonzero(self._labels < 0).astype(np.int64)
            if len(dead) == 0:
                return None
            batch = self._faiss.IDSelectorBatch(dead)
            self._selector = (batch, self._faiss.IDSelectorNot(batch))    # keep the inner selector alive
        return self._faiss.SearchParametersHNSW(sel=self._selector[1], efSearch=EF_SEARCH)

    def search(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        q = self._check(vector, 1)
        with self._lock:
            self._maybe_reload()
            if not self._node:
                return []
            params = self._params()
            scores, nodes = (self._index.search(q, k, params=params) if params is not None
                             else self._index.search(q, k))
            labels = self._labels
        return [Neighbour(int(labels[n]), float(s)) for s, n in zip(scores[0], nodes[0])
                if n >= 0 and labels[n] >= 0]

    def missing(self, ids: Sequence[int]) -> list[int]:
        with self._lock:
            return [int(i) for i in ids if int(i) not in self._node]

    def __len__(self) -> int:
        with self._lock:
            return len(self._node)

    def _rebuild(self) -> None:
        alive = np.flatnonzero(self._labels >= 0)
        vectors = self._index.reconstruct_n(0, self._index.ntotal)[alive] if len(alive) else None
        labels = self._labels[alive]
        self._reset()
        if vectors is not None:
            self._index.add(vectors)
        self._labels = labels
        self._node = {int(r): i for i, r in enumerate(labels)}

    def flush(self) -> None:
        """Write the index to its file (temporary name, then rename) if anything
        changed, rebuilding the graph first when tombstones exceed :data:`REBUILD_TOMBSTONES`."""
        with self._lock:
            if not self._dirty:
                return
            if len(self._labels) and (self._labels < 0).mean() > REBUILD_TOMBSTONES:
                self._rebuild()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
            np.savez(tmp, index=self._faiss.serialize_index(self._index), labels=self._labels)
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime
            self._dirty = False
