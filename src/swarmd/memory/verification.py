"""Which quality gates have not shown their risk bound on this deployment, and how many
reviews would let consolidation decide.

A gate is one (action, label set, model, prompt form) of a local model.  It is *verified* once
consolidation (:mod:`swarmd.memory.consolidate`) activated a learned version of it (threshold
chosen so the 95% Wilson upper bound of its false-accept rate stays <=
``quality.max_false_accept``).  Until then answers it accepts carry ``gate: shipped`` and are
shown ``unverified`` (:func:`swarmd.router.router.verification_of`).  :func:`unverified_gates`
lists those gates with their usable verified records and the reviews still missing
(``memory.min_verified``), from one store's attempts and memory tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from swarmd.memory.gate import GateBook
from swarmd.memory.records import PROMPT_FORM_SQL, Memory, label_key


@dataclass
class UnverifiedGate:
    """One gate not yet verified on this deployment: ``accepted`` answers it
    let through unchecked, ``verified`` usable records of it, and
    ``reviews_needed`` (``memory.min_verified − verified``, at least 0) before
    consolidation refits it."""

    action: str
    labels: str
    model: str
    prompt: str
    accepted: int
    verified: int
    reviews_needed: int

    def to_json(self) -> dict:
        """Plain dict (``status --json``, ``memory stats --json``)."""
        return asdict(self)

    def sentence(self) -> str:
        """One line for the console."""
        more = (f"{self.reviews_needed} more reviewed answers (swarmctl feedback) let consolidation decide"
                if self.reviews_needed else "enough reviews: the next consolidation (swarmctl memory consolidate) decides")
        return (f"{self.action} [{self.labels}] {self.model} ({self.prompt} prompt): {self.accepted} answers accepted "
                f"under the shipped calibration, not yet checked on this deployment; {self.verified} verified, {more}")


def unverified_gates(memory: Memory, min_verified: int) -> list[UnverifiedGate]:
    """The gates that accepted answers under the shipped calibration
    (``gate: shipped`` in the stored attempts) and have no active learned
    version now, most accepted first (see the module docstring).
    ``min_verified``: ``memory.min_verified`` of the config."""
    with memory.lock:
        rows = memory.conn.execute(
            "SELECT o.action, o.labels, json_extract(a.data, '$.model'), "
            "COALESCE(json_extract(a.data, '$.prompt'), 'fixed'), COUNT(*) "
            "FROM attempts a JOIN objectives o ON o.id = a.objective_id "
            "WHERE json_extract(a.data, '$.gate') = 'shipped' AND json_extract(a.data, '$.outcome') = 'accepted' "
            "GROUP BY 1, 2, 3, 4").fetchall()
        usable = {(a, k, m, f): n for a, k, m, f, n in memory.conn.execute(
            f"SELECT action, label_key, model, {PROMPT_FORM_SQL}, COUNT(*) FROM verified_outcomes "
            "WHERE answer IS NOT NULL AND local_answer IS NOT NULL AND model IS NOT NULL "
            "AND local_tier != 'MEMORY' GROUP BY 1, 2, 3, 4")}
    active = GateBook(memory).active()
    accepted: dict[tuple[str, str, str, str], int] = {}
    for action, labels, model, form, n in rows:
        key = (action, label_key(json.loads(labels) if labels else ()), model, form)
        accepted[key] = accepted.get(key, 0) + n
    out = [UnverifiedGate(*key, n, usable.get(key, 0), max(0, min_verified - usable.get(key, 0)))
           for key, n in accepted.items() if key not in active]
    return sorted(out, key=lambda g: (-g.accepted, g.action, g.labels, g.model, g.prompt))
