"""Human feedback on finished objectives (``swarmctl feedback``): ``human`` records.

One item is ``{"id", "answer"}`` (the right answer) or ``{"id", "verdict": "good"|"bad"}``
(a judgement of the objective's answer), with an optional ``"note"``.  Every item is
checked before anything is written; a batch with any bad item writes nothing
(:class:`FeedbackError` lists every problem with its line).  An item is bad when its id is
unknown or repeated, the objective is not final, the answer is outside its labels, a
verdict is given for an objective without an answer, or the line is not a JSON object of
the allowed keys.

The record judges the objective's first answered attempt (the lowest tier that answered).
Feedback given again on an objective replaces its earlier ``human`` record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from swarmd.errors import BadInput
from swarmd.jsonl import scan_jsonl
from swarmd.memory.outcomes import local_fields
from swarmd.memory.records import Memory, Verified

VERDICTS = ("good", "bad")
FINAL = ("done", "unresolved", "failed")
_KEYS = {"id", "answer", "verdict", "note"}


class FeedbackError(BadInput, ValueError):
    """Feedback that cannot be applied; ``problems`` lists ``where: why`` lines (all of them)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        super().__init__("feedback not applied (nothing was written):\n" + "\n".join(shown))


@dataclass(frozen=True)
class Feedback:
    """One feedback item; ``where`` names its origin in messages (``file:line`` or ``"--id X"``)."""

    id: str
    answer: str | None = None
    verdict: str | None = None
    note: str | None = None
    where: str = "feedback"


def apply_file(memory: Memory, get_objective: Callable[[str], dict | None], path: str | Path) -> list[Verified]:
    """Apply a JSONL feedback file all or nothing: :func:`read_lines` then
    :func:`apply_feedback`, reporting the malformed lines and the items that
    do not apply together, in line order.  Raises :class:`FeedbackError`."""
    items, problems = read_lines(path)
    return apply_feedback(memory, get_objective, items, problems)


def read_lines(path: str | Path) -> tuple[list[Feedback], list[str]]:
    """(items, problems) of a JSONL feedback file (:func:`swarmd.jsonl.scan_jsonl`:
    blank lines skipped): every malformed line is a problem ``file:line: why``;
    so is a file that cannot be read or holds no item."""
    lines, problems = scan_jsonl(path)
    items = []
    for n, data in lines:
        try:
            items.append(item_from(data, f"{path}:{n}"))
        except FeedbackError as exc:
            problems.extend(exc.problems)
    if not items and not problems:
        problems.append(f"{path}: no feedback items")
    return items, problems


def item_from(data, where: str) -> Feedback:
    """One :class:`Feedback` from a decoded JSON value; raises :class:`FeedbackError`."""
    if not isinstance(data, dict):
        raise FeedbackError([f"{where}: expected a JSON object, found {type(data).__name__}"])
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise FeedbackError([f"{where}: unknown key(s) {', '.join(unknown)}; expected id, answer or verdict, note"])
    oid, answer, verdict, note = (data.get(k) for k in ("id", "answer", "verdict", "note"))
    if not isinstance(oid, str) or not oid.strip():
        raise FeedbackError([f"{where}: \"id\" must be a non-empty string"])
    if (answer is None) == (verdict is None):
        raise FeedbackError([f"{where}: give exactly one of \"answer\" or \"verdict\""])
    if answer is not None and (not isinstance(answer, str) or not answer.strip()):
        raise FeedbackError([f"{where}: \"answer\" must be a non-empty string"])
    if verdict is not None and verdict not in VERDICTS:
        raise FeedbackError([f"{where}: \"verdict\" must be \"good\" or \"bad\", found {verdict!r}"])
    if note is not None and not isinstance(note, str):
        raise FeedbackError([f"{where}: \"note\" must be a string"])
    return Feedback(oid, answer.strip() if answer else None, verdict, note, where)


def judged_attempt(objective: dict, verdict: str | None) -> dict:
    """The attempt an item judges: for ``bad``, the one that gave the
    objective's answer (only that answer is known to be wrong); otherwise the
    first attempt with an answer (the lowest tier that answered)."""
    attempts = [a for a in objective.get("attempts") or () if a.get("answer") is not None]
    if verdict == "bad":
        gave = [a for a in attempts if a.get("answer") == objective["answer"] and a.get("tier") == objective["tier"]]
        return gave[-1] if gave else {"answer": objective["answer"], "tier": objective["tier"],
                                      "model": objective["model"], "confidence": objective.get("confidence")}
    return attempts[0] if attempts else {}


def to_record(item: Feedback, objective: dict | None) -> Verified:
    """The ``human`` record of one item; raises :class:`FeedbackError` (naming
    ``item.where``) when it cannot apply to ``objective`` (``None`` = unknown id)."""
    where = item.where
    if objective is None:
        raise FeedbackError([f"{where}: unknown objective id {item.id!r}"])
    if objective["state"] not in FINAL:
        raise FeedbackError([f"{where}: objective {item.id} is {objective['state']}, not final; "
                             "give feedback once it is done, unresolved or failed"])
    labels = tuple(objective.get("labels") or ())
    if item.answer is not None and labels and item.answer not in labels:
        raise FeedbackError([f"{where}: answer {item.answer!r} is not one of objective {item.id}'s labels "
                             f"({', '.join(labels)})"])
    if item.verdict is not None and objective.get("answer") is None:
        raise FeedbackError([f"{where}: objective {item.id} has no answer to judge; give \"answer\" instead"])
    local = local_fields(judged_attempt(objective, item.verdict))
    answer = {"good": objective["answer"], "bad": None}.get(item.verdict, item.answer)
    return Verified(objective["action"], labels, objective["input"], answer, "human", verifier="human",
                    objective_id=item.id, note=item.note, created_at=objective.get("submitted_at") or 0.0,
                    **local)


def apply_feedback(memory: Memory, get_objective: Callable[[str], dict | None],
                   items: list[Feedback], problems: list[str] = ()) -> list[Verified]:
    """Check every item, then write all their ``human`` records in one
    transaction; returns them.  ``get_objective``: id → the stored objective
    with its attempts (:meth:`swarmd.daemon.store.Store.get`) or ``None``;
    ``problems``: ones found earlier (malformed lines), reported with these.

    Raises :class:`FeedbackError` listing every problem in line order; then nothing is written.
    """
    problems, records, seen = list(problems), [], {}
    for item in items:
        if item.id in seen:
            problems.append(f"{item.where}: objective {item.id} already given at {seen[item.id]}")
            continue
        seen[item.id] = item.where
        try:
            records.append(to_record(item, get_objective(item.id)))
        except FeedbackError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FeedbackError(sorted(problems, key=_line_order))
    memory.add_many(records, replace=True)
    return records


def _line_order(problem: str) -> tuple:
    where = problem.split(": ", 1)[0]
    line = where.rsplit(":", 1)[-1]
    return (where.rsplit(":", 1)[0], int(line)) if line.isdigit() else (where, 0)
