"""Learned quality-gate calibrations: every version kept, the active ones read by the router.

Table ``gate_calibrations`` (migration 7 in :mod:`swarmd.store.schema`):
one row per candidate fitted by consolidation (:mod:`swarmd.memory.consolidate`)
for one (action, label set, model, prompt form — column ``prompt``,
migration 12), with its calibration (``NULL`` for a
threshold-only candidate of a model without label scores), its acceptance
threshold (above 1: accept nothing), the held-out utilities of it and of the
gate in use then, and ``active`` (at most one active row per key; a swap
activates the new row and deactivates the old in one transaction).

:class:`GateBook` gives the router the active ones; it re-reads the table
when the set of active versions changed, which it checks (one indexed query)
on every request: a worker uses a new calibration from its next job, without
a restart.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from swarmd.config import LabelCalibration
from swarmd.memory.cache import AnswerCache
from swarmd.memory.embed import MODEL_ID, shared_embedder
from swarmd.memory.records import Memory, label_key
from swarmd.memory.retrieval import Retriever
from swarmd.memory.vectors import open_index as open_vectors

#: a threshold no confidence reaches: the gate accepts nothing of that model
NEVER = 1.01


class GateBook:
    """The active learned gate of every (action, label set, model, prompt form) in ``memory``."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self._stamp = None
        self._active: dict[tuple[str, str, str, str], tuple[LabelCalibration | None, float, int]] = {}
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self.memory.lock:
            stamp = tuple(self.memory.conn.execute(
                "SELECT COUNT(*), MAX(version), SUM(version) FROM gate_calibrations WHERE active=1").fetchone())
            if stamp == self._stamp:
                return
            rows = self.memory.conn.execute("SELECT action, label_key, model, prompt, calibration, threshold, version "
                                            "FROM gate_calibrations WHERE active=1").fetchall()
        active = {}
        for action, key, model, form, cal, threshold, version in rows:
            active[(action, key, model, form)] = (LabelCalibration(**{**json.loads(cal), "prompt": form})
                                                  if cal else None, threshold, version)
        with self._lock:
            self._active, self._stamp = active, stamp

    def active(self) -> dict[tuple[str, str, str, str], tuple[LabelCalibration | None, float, int]]:
        """``(action, label_key, model, prompt form) → (calibration or None, threshold, version)`` of the active rows."""
        self._refresh()
        return dict(self._active)

    def learned(self, action: str, labels) -> tuple[tuple[LabelCalibration, ...], dict[tuple[str, str], float]]:
        """For one request: the learned calibrations that apply (to put before
        the shipped ones; each names its prompt form) and the learned threshold
        of each (model name, prompt form)."""
        key = label_key(labels)
        cals, thresholds = [], {}
        for (a, k, model, form), (cal, threshold, _v) in self.active().items():
            if a == action and k == key:
                thresholds[(model, form)] = threshold
                if cal is not None:
                    cals.append(cal)
        return tuple(cals), thresholds


class RouterMemory:
    """What the router asks the learning memory: the answer cache
    (:meth:`lookup`, when ``cache`` is on), the learned gate (:meth:`learned`)
    and retrieved verified examples (:meth:`examples`: ``k`` of them by
    ``mode`` through ``retriever``, a :class:`swarmd.memory.retrieval.Retriever`;
    none without one)."""

    def __init__(self, memory: Memory, cache: bool = True, retriever=None, k: int = 0, mode: str = "bm25"):
        self.memory = memory
        self.cache = AnswerCache(memory) if cache else None
        self.gate = GateBook(memory)
        self.retriever, self.k, self.mode = retriever, k, mode

    def examples(self, action: str, text: str, labels) -> tuple[tuple[str, str], ...]:
        """Up to ``k`` verified (input, answer) pairs of (action, labels) nearest to ``text``."""
        if self.retriever is None or self.k <= 0:
            return ()
        return tuple((e.input, e.answer) for e in self.retriever.search(action, labels, text, k=self.k, mode=self.mode))

    def lookup(self, action: str, text: str, labels):
        """:meth:`swarmd.memory.cache.AnswerCache.lookup`, or ``None`` with the cache off."""
        return self.cache.lookup(action, text, labels) if self.cache is not None else None

    def learned(self, action: str, labels):
        """:meth:`GateBook.learned`."""
        return self.gate.learned(action, labels)


def open_retriever(config, memory: Memory) -> Retriever | None:
    """The :class:`Retriever` the configuration asks for over ``memory``, or
    ``None`` (``memory.retrieval_examples`` 0): BM25 alone for mode ``bm25``,
    else also the shared embedder and the vector index of the data
    directory (``memory``'s folder) or Qdrant (``memory.qdrant_url``)."""
    settings = config.memory
    if not settings.retrieval_examples:
        return None
    embedder = open_index = None
    if settings.retrieval_mode != "bm25":
        def open_index(name, dim):
            return open_vectors(name, dim, data_dir=Path(memory.path).parent, model_id=MODEL_ID,
                                qdrant_url=settings.qdrant_url)
        embedder = shared_embedder()
    return Retriever(memory, embedder, open_index)


def open_router_memory(config, path) -> RouterMemory:
    """The :class:`RouterMemory` over the store at ``path`` (``config.memory.cache``
    turns the cache on; ``memory.retrieval_examples`` > 0 adds the retriever
    of :func:`open_retriever`)."""
    memory = Memory(path)
    settings = config.memory
    return RouterMemory(memory, cache=settings.cache, retriever=open_retriever(config, memory),
                        k=settings.retrieval_examples, mode=settings.retrieval_mode)
