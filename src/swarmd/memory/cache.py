"""The answer cache, tier ``MEMORY``: verified answers served again, at no cost.

The router asks it first (:meth:`swarmd.router.Router.route`) for label outputs only
(``label``, ``labels``, ``yes_no``).  A request hits, for the same action and label set:

* **exact**: verified records of the same normalised input agree on one answer among
  those of the most trusted source present (human > audit > teacher); or
* **template**: at least :data:`MIN_TEMPLATE_SUPPORT` distinct verified inputs with the
  same template (numbers, versions and hashes masked) all have one answer, none disagrees,
  and the template is not disabled.

A template is disabled for good (table ``cache_disabled``) as soon as an answer it served
is verified wrong.  Hit precision is reported by ``swarmctl memory stats`` (tier ``MEMORY``,
models ``exact`` and ``template``).
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmd.memory.records import SOURCE_RANK, Memory, label_key, normalise_input, template_of

#: distinct verified inputs a template needs before it answers
MIN_TEMPLATE_SUPPORT = 2


@dataclass(frozen=True)
class Hit:
    """A cache answer: ``kind`` is ``"exact"`` or ``"template"``, ``support``
    the number of verified records behind it."""

    answer: str
    kind: str
    support: int


class AnswerCache:
    """Lookups of verified answers in a :class:`~swarmd.memory.records.Memory`."""

    def __init__(self, memory: Memory, min_template_support: int = MIN_TEMPLATE_SUPPORT):
        self.memory = memory
        self.min_template_support = min_template_support

    def lookup(self, action: str, text: str, labels) -> Hit | None:
        """The verified answer for ``text``, or ``None`` (see the module docstring).
        ``labels``: the request's label set."""
        key = label_key(labels)
        with self.memory.lock:
            rows = self.memory.conn.execute(
                "SELECT answer, source, local_answer FROM verified_outcomes WHERE action=? AND label_key=? "
                "AND input_norm=?", (action, key, normalise_input(text))).fetchall()
            if rows:      # an answer judged wrong (answer NULL) is never served for this input
                vetoed = {local for answer, _s, local in rows if answer is None}
                rows = [(a, s) for a, s, _l in rows if a is not None and a not in vetoed]
                if not rows:
                    return None
                top = max(SOURCE_RANK[s] for _a, s in rows)
                answers = {a for a, s in rows if SOURCE_RANK[s] == top}
                return Hit(answers.pop(), "exact", len(rows)) if len(answers) == 1 else None
            template = template_of(text)
            if self.memory.conn.execute("SELECT 1 FROM cache_disabled WHERE action=? AND label_key=? AND template=?",
                                        (action, key, template)).fetchone():
                return None
            rows = self.memory.conn.execute(
                "SELECT answer, COUNT(DISTINCT input_norm) FROM verified_outcomes WHERE action=? AND label_key=? "
                "AND template=? AND answer IS NOT NULL GROUP BY answer LIMIT 2", (action, key, template)).fetchall()
        if len(rows) == 1 and rows[0][1] >= self.min_template_support:
            return Hit(rows[0][0], "template", rows[0][1])
        return None

