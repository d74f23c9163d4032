r"""BM25 ranking of one collection's verified inputs, on bm25s.

One :class:`Bm25Index` per (action, label set): the inputs of its records with an answer,
tokenized by :func:`tokenize` (lower-cased ``\w+`` tokens, Snowball English stems, no
stopwords), ranked by exact BM25 over all of a query's terms (Lucene's variant, :data:`K1`
1.2, :data:`B` 0.75).

Records written after the index was built are scored apart with the index's statistics,
so a search sees them at once; the index is rebuilt in a background thread when they
exceed :data:`REBUILD_SHARE` of it or after :meth:`Bm25Index.invalidate`.  Only the first
build is made by the search itself.  A deleted record still ranked is dropped by the
retriever, which resolves every id against SQLite.  Why bm25s and not SQLite FTS5, and how
the rebuild keeps rankings exact: docs/design.md.
"""

from __future__ import annotations

import threading
from collections import Counter

import bm25s
import numpy as np
import Stemmer
from loguru import logger

from swarmd.memory.records import Memory, label_key

#: BM25 term-frequency saturation and length normalisation (bm25s's and FTS5's defaults)
K1, B = 1.2, 0.75
#: records written since the build, as a share of the indexed ones, that make the next search start a
#: rebuild in the background (at 100,000 records a build takes ~3 s of CPU: bench/retrieval.py)
REBUILD_SHARE = 0.05
#: tokens: runs of word characters, as SQLite's unicode61 tokenizer splits them
TOKEN_PATTERN = r"(?u)\w+"
_STEMMER = Stemmer.Stemmer("english")
_STEMMER_LOCK = threading.Lock()          # a PyStemmer object keeps a cache: one thread at a time


def tokenize(texts: list[str], stemmer: Stemmer.Stemmer | None = None) -> list[list[str]]:
    """The BM25 tokens of each text: lower-cased ``\\w+`` runs, stemmed (Snowball English).
    ``stemmer``: a PyStemmer English stemmer this thread alone uses (a background build
    passes its own, so that searches do not wait for it); ``None``: the shared one."""
    if stemmer is None:
        with _STEMMER_LOCK:
            return tokenize(texts, _STEMMER)
    tokens = bm25s.tokenize(texts, lower=True, token_pattern=TOKEN_PATTERN, stopwords=None, stemmer=stemmer,
                            return_ids=False, show_progress=False, allow_empty=False)
    return [[t for t in doc if t] for doc in tokens]      # bm25s gives a text without any token [""]


class Bm25Index:
    """The BM25 index of the records of ``action`` and ``labels`` (with an answer) in ``memory``.

    :meth:`search` reads new records first (see the module docstring), so a
    record written a moment ago is found; a rebuild it finds due runs in a
    background thread (:attr:`building` while it runs; :attr:`builds` counts
    the builds finished).  Thread-safe.
    """

    def __init__(self, memory: Memory, action: str, labels):
        self.memory, self.action, self.key = memory, action, label_key(labels)
        self._lock = threading.Lock()
        self._model: bm25s.BM25 | None = None
        self._ids = np.zeros(0, dtype=np.int64)        # row id of each indexed document
        self._df = np.zeros(0, dtype=np.int64)         # document frequency of each vocabulary term
        self._avgdl = 1.0
        self._watermark = -1                           # highest record id (of any collection) read
        self._recent: list[tuple[int, Counter, int]] = []   # (id, term counts, length) written since the build
        self._stale = False                            # invalidated: rebuild
        self._gone: set[int] = set()                   # ids found deleted while a build ran
        self._builder: threading.Thread | None = None  # the background build under way
        self.builds = 0

    def invalidate(self, ids=None) -> None:
        """Rebuild from the next search on (records were deleted or edited).
        ``ids``: the deleted records seen, when known: then only if the index
        holds one of them still (a ranking by an index since replaced asks for
        nothing), and a build under way is followed by another only if its
        index holds one."""
        with self._lock:
            if ids is None:
                self._stale = True
            elif self._builder is not None:
                self._gone.update(int(i) for i in ids)
            else:
                self._stale = self._stale or self._holds(set(ids))

    def _holds(self, ids: set[int]) -> bool:
        """Whether any of ``ids`` is indexed or read since the build."""
        return bool(ids) and (bool(np.isin(list(ids), self._ids).any()) or any(r[0] in ids for r in self._recent))

    @property
    def building(self) -> bool:
        """True while a background rebuild runs."""
        return self._builder is not None

    def __len__(self) -> int:
        """Records indexed at the last build plus those read since (0 before the first search)."""
        return len(self._ids) + len(self._recent)

    def _rows(self, after: int = -1) -> tuple[list[tuple[int, str]], int]:
        with self.memory.lock:
            top = self.memory.conn.execute("SELECT MAX(id) FROM verified_outcomes").fetchone()[0] or 0
            rows = [] if top <= after else self.memory.conn.execute(
                "SELECT id, input FROM verified_outcomes WHERE id > ? AND +action = ? AND +label_key = ? "
                "AND answer IS NOT NULL ORDER BY id", (after, self.action, self.key)).fetchall()   # "+": by rowid
        return rows, top

    def _index(self, rows: list[tuple[int, str]], stemmer: Stemmer.Stemmer | None = None) -> tuple:
        """``(bm25s model or None without any token, n ids, df per vocabulary
        term, mean token count)`` of ``rows`` ((id, input), by id); touches no
        state of this index (a background build runs it outside the lock)."""
        tokens = tokenize([r[1] for r in rows], stemmer) if rows else []
        if not any(tokens):
            return None, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 1.0
        model = bm25s.BM25(k1=K1, b=B, method="lucene")
        model.index(tokens, show_progress=False)
        return (model, np.array([r[0] for r in rows], dtype=np.int64),
                np.diff(model.scores["indptr"]).astype(np.int64), float(np.mean([len(t) for t in tokens])))

    def _install(self, built: tuple, top: int) -> None:
        """Swap in ``built`` (:meth:`_index` of the records up to id ``top``), under the lock:
        the records read since that are above ``top`` stay apart."""
        self._model, self._ids, self._df, self._avgdl = built
        self._recent = [r for r in self._recent if r[0] > top]
        self._watermark = max(self._watermark, top)
        self.builds += 1

    def _rebuild(self) -> None:
        """The background build: index every record, swap it in; a failure is
        logged and leaves the index invalidated (the next search tries again)."""
        try:
            rows, top = self._rows()
            built = self._index(rows, Stemmer.Stemmer("english"))
        except Exception:
            logger.exception("BM25 rebuild of {} / {} failed; searching the old index", self.action, self.key)
            with self._lock:
                self._stale, self._gone, self._builder = True, set(), None
            return
        with self._lock:
            self._install(built, top)
            self._stale, self._gone, self._builder = self._stale or self._holds(self._gone), set(), None

    def _refresh(self) -> None:
        """Read the records written since the last read; start a rebuild when
        one is due and none runs (the first build is made here, at once)."""
        if self.builds == 0 and self._builder is None:
            rows, top = self._rows()
            self._install(self._index(rows, Stemmer.Stemmer("english")), top)
            return
        rows, top = self._rows(self._watermark)
        if rows:
            self._recent += [(i, Counter(t), len(t)) for (i, _text), t in zip(rows, tokenize([r[1] for r in rows]))]
        self._watermark = max(self._watermark, top)
        if self._builder is None and (self._stale or len(self._recent) > REBUILD_SHARE * len(self._ids)):
            self._stale, self._gone = False, set()
            self._builder = threading.Thread(target=self._rebuild, name=f"bm25-{self.action}", daemon=True)
            self._builder.start()

    def _idf(self, term: str) -> float:
        """Lucene's IDF, ln(1 + (N − df + 0.5) / (df + 0.5)), with the index's N and df."""
        i = self._model.vocab_dict.get(term) if self._model is not None else None
        df = int(self._df[i]) if i is not None else 0
        return float(np.log(1.0 + (len(self._ids) - df + 0.5) / (df + 0.5)))

    def score_recent(self, terms: list[str], counts: Counter, length: int) -> float:
        """BM25 of a document not in the index (its term ``counts`` and token
        ``length``) for the distinct query ``terms``, with the index's
        statistics: Σ idf · tf / (tf + K1·(1 − B + B·length/avgdl)), bm25s's Lucene form."""
        norm = K1 * (1 - B + B * length / self._avgdl)
        return sum(self._idf(t) * counts[t] / (counts[t] + norm) for t in terms if counts[t])

    def search(self, text: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (record id, BM25 score > 0), best first, for ``text``
        (its distinct tokens, each counted once); ``[]`` without any token.
        Waits for the first build only, never for a rebuild (module docstring)."""
        terms = list(dict.fromkeys(tokenize([text])[0]))
        with self._lock:
            self._refresh()
            if not terms or k <= 0:
                return []
            found: list[tuple[int, float]] = []
            if self._model is not None:
                ids = self._model.get_tokens_ids(terms)
                if ids:
                    scores = self._model.get_scores(ids)
                    hit = np.flatnonzero(scores > 0)
                    if len(hit) > k:
                        hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
                    found = [(int(self._ids[d]), float(scores[d])) for d in hit]
            for i, counts, length in self._recent:
                s = self.score_recent(terms, counts, length)
                if s > 0:
                    found.append((i, s))
        found.sort(key=lambda p: (-p[1], p[0]))
        return found[:k]
