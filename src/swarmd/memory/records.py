"""Verified outcomes: the learning memory's records, kept in the store's SQLite file.

One row of ``verified_outcomes`` per verified (action, label set, input, answer); ``source``
says who verified it: ``teacher`` (a higher tier's answer accepted after a lower tier's
attempt), ``human`` (:mod:`swarmd.memory.feedback`) or ``audit``
(:mod:`swarmd.memory.audit`).  An answer accepted by the quality gate alone is never
written here.  The ``local_*`` columns describe the first free-tier answer the record
judges (model, answer, confidence, accepted or not, raw label log-probabilities, prompt
form ``fixed`` or ``retrieved``).  Times are unix seconds.

Rows are written by the daemon, ``swarmctl feedback`` and consolidation; workers only read
(the answer cache).  A row that cannot be decoded raises :class:`RecordError` naming it;
readers that iterate skip it with a warning.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, get_args

from loguru import logger

from swarmd.config import PromptForm
from swarmd.errors import BadInput
from swarmd.costs.ledger import MEMORY_TIER
from swarmd.store.db import transaction
from swarmd.store.schema import open_db

SOURCES = ("teacher", "human", "audit")
#: the prompt forms a local answer can be scored in (``Prompt.form``; the config's :data:`swarmd.config.PromptForm`)
PROMPT_FORMS: tuple[str, ...] = get_args(PromptForm)
#: SQL of a record's prompt form: rows from before migration 12 (``NULL``) were all asked in the fixed form
PROMPT_FORM_SQL = "COALESCE(local_prompt, 'fixed')"
#: precedence when two verifications of one input disagree (higher wins)
SOURCE_RANK = {"teacher": 1, "audit": 2, "human": 3}


class RecordError(BadInput, ValueError):
    """A verified-outcome row that cannot be used; the message names the row and why."""


# --------------------------------------------------------------------------- keys

_WS = re.compile(r"\s+")
_MASKS = (   # order matters: hashes and versions before plain numbers
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"), "<hash>"),
    (re.compile(r"\bv?\d+(?:\.\d+)+(?:[-.+]?[a-z]+\d*)?\b"), "<ver>"),
    (re.compile(r"\d+"), "<n>"),
)


def normalise_input(text: str) -> str:
    """Case-folded ``text`` with whitespace folded to single spaces: the key of
    deduplication and of exact cache hits."""
    return _WS.sub(" ", text).strip().casefold()


def template_of(text: str) -> str:
    """:func:`normalise_input` with hashes (7-40 hex digits), versions
    (``1.2``, ``v3.1.52``, ``2.0.0rc1``) and other numbers masked, e.g.
    ``bump gitpython from 3.1.52 to 3.1.54 (#2038)`` →
    ``bump gitpython from <ver> to <ver> (#<n>)``."""
    out = normalise_input(text)
    for pattern, mask in _MASKS:
        out = pattern.sub(mask, out)
    return out


def label_key(labels) -> str:
    """The order-insensitive key of a label set (sorted, comma-joined; ``""`` for none)."""
    return ",".join(sorted(labels))


# --------------------------------------------------------------------------- records


@dataclass
class Verified:
    """One verified outcome (see the module docstring for the fields).

    ``labels``: the label set as asked (empty for outputs without labels);
    ``answer``: the right answer, or ``None`` when a human only said the
    local answer is wrong (``--bad``); ``local_scores``: ``{label: ln p(label)}`` of the local model, when it
    gave a label distribution; ``local_prompt``: the prompt form of that
    answer (:data:`PROMPT_FORMS`; ``None``: not recorded, taken as
    ``fixed``); ``rejected``: attempt dicts (``tier``,
    ``model``, ``answer``, ``confidence``).
    """

    action: str
    labels: tuple[str, ...]
    input: str
    answer: str | None
    source: str
    verifier: str | None = None
    objective_id: str | None = None
    model: str | None = None
    local_tier: str | None = None
    local_answer: str | None = None
    local_confidence: float | None = None
    local_accepted: bool | None = None
    local_scores: dict[str, float] | None = None
    local_prompt: str | None = None
    rejected: list[dict] = field(default_factory=list)
    note: str | None = None
    created_at: float = field(default_factory=time.time)
    verified_at: float = field(default_factory=time.time)
    value: float = 0.0
    id: int | None = None

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        if self.source not in SOURCES:
            raise RecordError(f"source {self.source!r}: expected one of {', '.join(SOURCES)}")
        if self.answer is None and self.local_answer is None:
            raise RecordError("a record without an answer must judge a local answer (verdict bad)")
        if self.labels and self.answer is not None and self.answer not in self.labels:
            raise RecordError(f"answer {self.answer!r} is not one of the labels {list(self.labels)}")
        if self.local_prompt is not None and self.local_prompt not in PROMPT_FORMS:
            raise RecordError(f"local_prompt {self.local_prompt!r}: expected one of {', '.join(PROMPT_FORMS)}")

    @property
    def prompt_form(self) -> str:
        """The prompt form the judged local answer was scored in (``fixed`` when not recorded)."""
        return self.local_prompt or "fixed"

    @property
    def local_correct(self) -> bool | None:
        """Whether the local answer equals the verified answer (``None`` without
        a local answer; False when a human only judged it wrong)."""
        return None if self.local_answer is None else self.local_answer == self.answer

    def row(self) -> dict:
        """The record as column values."""
        d = asdict(self)
        d.pop("id")
        d.update(labels=json.dumps(list(self.labels)), label_key=label_key(self.labels),
                 input_norm=normalise_input(self.input), template=template_of(self.input),
                 local_accepted=None if self.local_accepted is None else int(self.local_accepted),
                 local_scores=None if self.local_scores is None else json.dumps(self.local_scores),
                 rejected=json.dumps(self.rejected))
        return d

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Verified":
        """Decode one row; raises :class:`RecordError` naming the row when it is corrupted."""
        d = dict(row)
        try:
            for key in ("labels", "rejected", "local_scores"):
                if d[key] is not None:
                    d[key] = json.loads(d[key])
            if not isinstance(d["labels"], list) or not isinstance(d["rejected"], list):
                raise ValueError("labels and rejected must be JSON lists")
            if d["local_scores"] is not None and not isinstance(d["local_scores"], dict):
                raise ValueError("local_scores must be a JSON object")
            if d["local_accepted"] is not None:
                d["local_accepted"] = bool(d["local_accepted"])
            for key in ("label_key", "input_norm", "template"):
                d.pop(key)
            return cls(**d)
        except (ValueError, TypeError, KeyError) as exc:
            raise RecordError(f"verified_outcomes row {d.get('id')}: {exc}") from None


_COLUMNS = tuple(Verified("a", (), "", "", "human").row())


class Memory:
    """The verified-outcome records in one SQLite file.  Thread-safe.

    ``path``: the store's database (``<data dir>/memory.db`` by default),
    opened with :func:`swarmd.store.schema.open_db` (``verified_outcomes`` is
    created by its migration 5, ``cache_disabled`` by migration 6).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.conn = open_db(path)
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ writes
    def add(self, record: Verified, replace: bool = False) -> bool:
        """Insert ``record``; returns False when one with the same
        (objective id, source) exists and ``replace`` is false (a re-delivered
        event).  ``replace`` (feedback given again) overwrites it."""
        return self.add_many([record], replace)[0]

    def add_many(self, records: list[Verified], replace: bool = False, on_added=None) -> list[bool]:
        """:meth:`add` for many records in one transaction (all or nothing).

        A record that proves a cache answer wrong (``local_tier`` ``MEMORY``,
        local answer not the verified one) disables that input's template in
        the same transaction (table ``cache_disabled``).  ``on_added(i)`` is
        called inside the transaction for each record ``i`` newly written
        (to write related rows atomically)."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        sql = f"{verb} INTO verified_outcomes ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})"
        added = []
        with self.lock, self.transaction():
            for r in records:
                row = r.row()
                cur = self.conn.execute(sql, [row[c] for c in _COLUMNS])
                added.append(cur.rowcount == 1)
                if cur.rowcount == 1 and on_added is not None:
                    on_added(len(added) - 1)
                if cur.rowcount == 1 and r.local_tier == MEMORY_TIER and r.local_correct is False:
                    self.conn.execute("INSERT OR IGNORE INTO cache_disabled VALUES (?,?,?,?,?,?)",
                                      (r.action, row["label_key"], row["template"], r.local_answer,
                                       cur.lastrowid, time.time()))
                    logger.warning("memory: cache template {!r} of {} disabled: its answer {!r} was verified wrong",
                                   row["template"], r.action, r.local_answer)
        return added

    def transaction(self):
        """A ``BEGIN IMMEDIATE`` … ``COMMIT`` block (rolled back on any exception):
        :func:`swarmd.store.db.transaction` on this memory's connection."""
        return transaction(self.conn)

    # ------------------------------------------------------------------ reads
    def records(self, where: str = "1", params: tuple = (), order: str = "id") -> Iterator[Verified]:
        """Records matching an SQL ``where`` clause; corrupted rows are logged and skipped."""
        with self.lock:
            rows = self.conn.execute(f"SELECT * FROM verified_outcomes WHERE {where} ORDER BY {order}",
                                     params).fetchall()
        for row in rows:
            try:
                yield Verified.from_row(row)
            except RecordError as exc:
                logger.warning("memory: skipping a corrupted record: {}", exc)

    def count(self, where: str = "1", params: tuple = ()) -> int:
        """Number of rows matching ``where``."""
        with self.lock:
            return self.conn.execute(f"SELECT COUNT(*) FROM verified_outcomes WHERE {where}", params).fetchone()[0]

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()
