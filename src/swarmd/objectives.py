"""Objectives: what users push, and the checks an objective passes at submit.

An objective is a JSON object::

    {"id": str, "action": str, "input": str, "labels": [str] | null,
     "priority": "high" | "normal" | "low", "max_cost_usd": float | null,
     "tags": [str], "submitted_at": float (unix seconds)}

Its life: ``queued → running → done | failed | unresolved``.  An ``agent``
objective whose next tool action the governor answers with ``ask`` is parked:
``running → awaiting_approval`` (not final); ``swarmctl approve`` / ``reject``
or the approval timeout queue it again (``→ queued → running → ...``).  An
objective the governor's admission rules refuse goes straight to ``failed``.
Free text with no action is rejected until the planner exists (the message
lists the supported actions).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass, field

from swarmd.config import Config

STATES = ("queued", "running", "awaiting_approval", "done", "failed", "unresolved")
FINAL_STATES = ("done", "failed", "unresolved")
PRIORITIES = ("high", "normal", "low")
#: RQ 3 accepts job ids of letters, digits, "_" and "-" only; the objective id is the job id.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_KNOWN = {"id", "action", "input", "labels", "priority", "max_cost_usd", "tags", "submitted_at", "text"}


class ObjectiveError(ValueError):
    """An objective that cannot be accepted; the message says why."""


@dataclass
class Objective:
    """A validated objective (see the module docstring for the fields)."""

    id: str
    action: str
    input: str
    labels: list[str] | None = None
    priority: str = "normal"
    max_cost_usd: float | None = None
    tags: list[str] = field(default_factory=list)
    submitted_at: float = 0.0

    def to_dict(self) -> dict:
        """The JSON-ready dict."""
        return asdict(self)


def new_id() -> str:
    """A fresh objective id: ``obj-`` + 16 hex digits (time-ordered prefix)."""
    return f"obj-{int(time.time()):08x}{uuid.uuid4().hex[:8]}"


def validate(raw: dict, config: Config) -> Objective:
    """Check one raw objective against the config and return it normalised.

    Accepts ``text`` as an alias of ``input``.  Raises :class:`ObjectiveError`
    for: a non-object, unknown fields, a missing/unknown action (free text
    with no action included), empty or oversized input (limit
    ``daemon.max_input_chars``), input that is not valid UTF-8 text, bad
    labels, a bad priority, a negative ``max_cost_usd``, or a malformed id.
    """
    if not isinstance(raw, dict):
        raise ObjectiveError(f"expected a JSON object, found {type(raw).__name__}")
    unknown = set(raw) - _KNOWN
    if unknown:
        raise ObjectiveError(f"unknown field(s) {sorted(unknown)}; known: {sorted(_KNOWN - {'text'})}")
    actions = ", ".join(config.actions)
    action = raw.get("action")
    if action is None:
        raise ObjectiveError(f"no action given; free-text objectives need the planner, which is not built yet. "
                             f"Give one of: {actions}")
    if action not in config.actions:
        raise ObjectiveError(f"unknown action {action!r}; supported: {actions}")
    text = raw.get("input", raw.get("text"))
    if not isinstance(text, str):
        raise ObjectiveError(f"input must be a string, found {type(text).__name__}")
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # lone surrogates: undecodable bytes
        raise ObjectiveError("input is not valid UTF-8 text")
    if not text.strip():
        raise ObjectiveError("input is empty")
    limit = config.daemon.max_input_chars
    if len(text) > limit:
        raise ObjectiveError(f"input is {len(text)} characters; the limit is {limit} (daemon.max_input_chars)")
    labels = raw.get("labels")
    if isinstance(labels, str):
        labels = [l.strip() for l in labels.split(",")]
    output = config.actions[action].output
    if output in ("label", "labels"):
        if not isinstance(labels, list) or len(labels) < 2:
            raise ObjectiveError(f"action {action!r} needs at least two labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(l, str) and l.strip() and "," not in l for l in labels):
            raise ObjectiveError("labels must be a list of non-empty strings without commas")
        if len(set(labels)) != len(labels):
            raise ObjectiveError("labels must be distinct")
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        raise ObjectiveError(f"priority must be one of {PRIORITIES}, found {priority!r}")
    cap = raw.get("max_cost_usd")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap < 0):
        raise ObjectiveError(f"max_cost_usd must be a number >= 0, found {cap!r}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ObjectiveError("tags must be a list of strings")
    oid = raw.get("id") or new_id()
    if not isinstance(oid, str) or not _ID_RE.match(oid):
        raise ObjectiveError(f"id must be 1-128 characters of letters, digits, '_' and '-', found {oid!r}")
    submitted = raw.get("submitted_at") or time.time()
    return Objective(id=oid, action=action, input=text, labels=labels, priority=priority,
                     max_cost_usd=cap, tags=tags, submitted_at=float(submitted))
