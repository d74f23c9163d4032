"""The one small interface every vector-search backend implements (as dramatiq does with brokers).

A :class:`VectorIndex` holds unit-length float32 vectors under integer ids
(the ids of ``verified_outcomes`` rows) in one named collection (one per
action and label set, :func:`swarmd.memory.retrieval.collection_name`) and
answers nearest-neighbour queries by cosine similarity.  Backends, one a
file: :mod:`.hnsw` (the default: an embedded HNSW index persisted under the
data directory) and :mod:`.qdrant` (``memory.qdrant_url``: one Qdrant for
several hosts).  :func:`swarmd.memory.vectors.open_index` picks one from the config.

Ids are not checked against the records: a search may return ids of rows
pruned since they were indexed, and callers resolve ids against SQLite and
drop those (:class:`swarmd.memory.retrieval.Retriever` does).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from swarmd.errors import BadInput

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class VectorIndexError(BadInput, RuntimeError):
    """A vector index that cannot be used (bad name, wrong dimensions, unreadable file,
    unreachable server); the message names the index and why."""


@dataclass(frozen=True)
class Neighbour:
    """One search result: the record ``id`` and its cosine ``score`` (-1..1, higher is closer)."""

    id: int
    score: float


class VectorIndex(ABC):
    """Nearest-neighbour search over the unit vectors of one collection.

    ``name``: the collection (letters, digits, ``_.-``; at most 128);
    ``dim``: the vector length every call must use.  Implementations are
    thread-safe.
    """

    kind = "base"

    def __init__(self, name: str, dim: int):
        if not _NAME.match(name):
            raise VectorIndexError(f"vector index name {name!r}: expected 1-128 letters, digits, '_', '.' or '-'")
        self.name, self.dim = name, dim

    def _check(self, vectors: np.ndarray, n: int | None = None) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.dim or (n is not None and v.shape[0] != n):
            raise VectorIndexError(f"vector index {self.name}: expected {n if n is not None else 'n'} × {self.dim} "
                                   f"vectors, got shape {tuple(np.shape(vectors))}")
        return np.ascontiguousarray(v)

    @abstractmethod
    def upsert(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store ``vectors`` (len(ids) × dim, unit length) under ``ids``, replacing existing ones."""

    @abstractmethod
    def delete(self, ids: Sequence[int]) -> None:
        """Remove ``ids`` (unknown ids are ignored)."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        """Up to ``k`` nearest stored vectors to ``vector`` (dim floats), closest first."""

    @abstractmethod
    def missing(self, ids: Sequence[int]) -> list[int]:
        """Those of ``ids`` that the index does not hold (what a sync must embed)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors held."""

    def flush(self) -> None:
        """Make what was upserted durable (a file backend writes its file); default: nothing."""

    def close(self) -> None:
        """:meth:`flush` and release the index."""
        self.flush()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim}, n={len(self)})"
