"""Objectives: what users push, and the checks an objective passes at submit.

An objective is a JSON object::

    {"id": str, "action": str, "input": str, "labels": [str] | null,
     "priority": "high" | "normal" | "low", "max_cost_usd": float | null,
     "strategy": "cascade" | "local_only" | "api_only" | "local_fallback" | null,
     "tags": [str], "submitted_at": float (unix seconds), "retry_of": str | null,
     "traceparent"?: str (W3C, :mod:`swarmd.telemetry`)}

``strategy`` is checked against the config (:data:`AGENT_ROUTED` for agents) and defaults to
the action's.  Life: ``queued → running → done | failed | unresolved``, or ``cancelled``; an
agent the governor answers ``ask`` waits in ``awaiting_approval``.  Free text with no action
is an :data:`AGENT_ACTION` objective.
:class:`ObjectiveError` (exit 2) names every bad field.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from redis.commands.core import Script

from swarmd import constants as K
# the agent objective's actions live in the config module (its validation checks them); importable here too
from swarmd.config import AGENT_ACTION
from swarmd.config import Config, Strategy
from swarmd.validation import InputError, Invalid, short, validate as validate_model

STATES = ("queued", "running", "awaiting_approval", "done", "failed", "unresolved", "cancelled")
#: ``cancelled``: by ``swarmctl cancel`` / the API (:mod:`swarmd.daemon.control`); it never runs (again).
FINAL_STATES = ("done", "failed", "unresolved", "cancelled")
Priority = Literal["high", "normal", "low"]
PRIORITIES = get_args(Priority)
#: RQ 3 accepts job ids of letters, digits, "_" and "-" only; the objective id is the job id.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class ObjectiveError(InputError):
    """An objective that cannot be accepted: every problem, each naming the
    field, expected and found (and the file and line it came from, when
    given); see :class:`swarmd.validation.InputError`."""


def _config(info: ValidationInfo) -> Config | None:
    return (info.context or {}).get("config")


class Objective(BaseModel):
    """A validated objective (see the module docstring for the fields).

    Built directly (trusted callers, tests) only the field types and
    formats are checked; :func:`validate` also checks it against the config.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    action: str = Field(default=None, validate_default=True)
    input: str = Field(validation_alias=AliasChoices("input", "text"))
    labels: list[str] | None = Field(default=None, validate_default=True)
    priority: Priority = "normal"
    max_cost_usd: Annotated[float, Field(ge=0, strict=True)] | None = None
    strategy: Strategy | None = Field(default=None, validate_default=True)
    tags: list[str] = Field(default_factory=list)
    submitted_at: float = 0.0
    #: The objective this one runs again (``swarmctl retry``; :func:`swarmd.daemon.control.retry`), else ``None``.
    retry_of: str | None = None
    #: W3C trace context of the ``submit`` span (:mod:`swarmd.telemetry`); absent when not tracing
    traceparent: str | None = Field(default=None, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    @field_validator("id")
    @classmethod
    def _id_format(cls, oid: str) -> str:
        if not _ID_RE.match(oid):
            raise Invalid(((), "1-128 characters of letters, digits, '_' and '-' (starting with a letter or digit)",
                           short(oid)))
        return oid

    @field_validator("action", mode="before")
    @classmethod
    def _action_given(cls, action: Any, info: ValidationInfo) -> Any:
        if action is None:
            config = _config(info)
            if config is not None and AGENT_ACTION not in config.actions:
                raise Invalid(((), f"an action (one of {', '.join(config.actions)}); free text needs the "
                                   f"{AGENT_ACTION!r} action, which this config lacks", "nothing"))
            return AGENT_ACTION
        return action

    @field_validator("action")
    @classmethod
    def _action_known(cls, action: str, info: ValidationInfo) -> str:
        config = _config(info)
        if config is not None and action not in config.actions:
            raise Invalid(((), f"one of the configured actions ({', '.join(config.actions)})",
                           f"unknown action {action!r}"))
        return action

    @field_validator("input")
    @classmethod
    def _input_text(cls, text: str, info: ValidationInfo) -> str:
        if any("\ud800" <= ch <= "\udfff" for ch in text):  # lone surrogates: undecodable bytes
            raise Invalid(((), "valid UTF-8 text", "bytes that are not UTF-8"))
        if not text.strip():
            raise Invalid(((), "non-empty text", f"{short(text)} (input is empty)"))
        config = _config(info)
        if config is not None and len(text) > config.daemon.max_input_chars:
            raise Invalid(((), f"at most {config.daemon.max_input_chars} characters (daemon.max_input_chars)",
                           f"{len(text)} characters"))
        return text

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, labels: Any) -> Any:
        return [label.strip() for label in labels.split(",")] if isinstance(labels, str) else labels

    @field_validator("labels")
    @classmethod
    def _label_set(cls, labels: list[str] | None, info: ValidationInfo) -> list[str] | None:
        config, action = _config(info), info.data.get("action")
        if config is not None and action in config.actions and config.actions[action].output in ("label", "labels") \
                and (labels is None or len(labels) < 2):
            raise Invalid(((), f"at least two labels for action {action!r} "
                               f"(output {config.actions[action].output})", short(labels)))
        if labels is None:
            return labels
        Invalid.raise_any(((i,), "a non-empty label without commas", short(label))
                          for i, label in enumerate(labels) if not label.strip() or "," in label)
        Invalid.raise_any(((i,), "distinct labels", f"{label!r} again") for i, label in enumerate(labels)
                          if label in labels[:i])
        return labels

    @field_validator("strategy")
    @classmethod
    def _strategy_servable(cls, strategy: str | None, info: ValidationInfo) -> str | None:
        config, action = _config(info), info.data.get("action")
        if config is None or action not in config.actions:
            return strategy
        strategy = config.strategy_of(action, strategy)
        problem = config.strategy_problem(action, strategy)
        if problem is not None:
            raise Invalid(((), problem, short(strategy)))
        if action == AGENT_ACTION:      # its plan, slot fills and verification are routed with it too
            Invalid.raise_any(((), lacking, short(strategy)) for lacking in config.agent_routing_problems(strategy))
        return strategy

    def to_dict(self) -> dict:
        """The JSON-ready dict (the keys of the module docstring; ``retry_of`` and
        ``traceparent`` only when set)."""
        out = self.model_dump()
        for optional in ("retry_of", "traceparent"):
            if out[optional] is None:
                del out[optional]
        return out


def new_id() -> str:
    """A fresh objective id: ``obj-`` + 16 hex digits (time-ordered prefix)."""
    return f"obj-{int(time.time()):08x}{uuid.uuid4().hex[:8]}"


def validate(raw: Any, config: Config, file: str | None = None, line: int | None = None) -> Objective:
    """Check one raw objective (a decoded JSON object) against the config and
    return it normalised: ``text`` is an alias of ``input`` (``input`` wins
    when both are given); a missing or empty ``id`` gets :func:`new_id`, a
    missing ``submitted_at`` the current time (unix seconds); ``labels`` may be
    one comma-separated string.

    Raises :class:`ObjectiveError` listing every problem, each naming the
    field (and ``file``/``line``, e.g. a JSONL file and its line, when
    given): a non-object, unknown fields, an action the config lacks (no
    action means :data:`AGENT_ACTION`), empty, oversized (limit
    ``daemon.max_input_chars``) or non-UTF-8 input, fewer than two labels for
    a label action, empty, comma-containing or repeated labels, a bad
    priority, a negative ``max_cost_usd``, an unknown ``strategy`` or one the
    action's chain cannot serve (``api_only`` with no API model; for an
    :data:`AGENT_ACTION` objective, the chain of any configured action of
    :data:`AGENT_ROUTED` too: ``local_only`` with ``actions.plan`` on the API
    tier), or a malformed id.  A missing ``strategy`` becomes the action's.
    """
    if isinstance(raw, dict):
        raw = dict(raw)
        if "input" in raw:
            raw.pop("text", None)
        raw["id"] = raw.get("id") or new_id()
        raw["submitted_at"] = raw.get("submitted_at") or time.time()
    return validate_model(Objective, raw, ObjectiveError, file=file or "objective", line=line,
                          context={"config": config})


def rejected_record(raw: Any, reason: str, max_chars: int) -> dict | None:
    """The stored row (:meth:`swarmd.daemon.store.Store.add_rejected_many`)
    of an objective :func:`validate` rejected, or ``None`` when ``raw`` names no
    usable id (not a dict, no ``id``, or one not of letters, digits, ``_`` and
    ``-``, 1-128 characters): such an entry is not an objective at all.

    Keys: ``id``, ``reason`` (as given), and each objective field as
    submitted when it has the field's type, else its default (``action``
    :data:`AGENT_ACTION`, ``input`` ``""``, ``priority`` ``normal``, ``labels``
    and ``strategy`` ``None``, ``tags`` ``[]``, ``submitted_at`` now, unix
    seconds); strings are cut to ``max_chars`` characters (the daemon passes
    ``daemon.max_input_chars``)."""
    oid = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(oid, str) or not _ID_RE.match(oid):
        return None

    def text(key: str, default: str | None) -> str | None:
        value = raw.get(key)
        return value[:max_chars] if isinstance(value, str) else default

    def strings(key: str) -> list[str] | None:
        value = raw.get(key)
        return [s[:max_chars] for s in value] if isinstance(value, list) and all(
            isinstance(s, str) for s in value) else None

    def number(key: str) -> float | None:
        value = raw.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return {"id": oid, "reason": reason, "action": text("action", AGENT_ACTION),
            "input": text("input", None) or text("text", ""), "labels": strings("labels"),
            "priority": text("priority", "normal"), "max_cost_usd": number("max_cost_usd"),
            "strategy": text("strategy", None), "tags": strings("tags") or [],
            "submitted_at": number("submitted_at") or time.time()}


# KEYS: the objective's state hash; ARGV: the seconds a final state's hash lives, the number n of final
# states, the n final states, then field, value pairs (``state`` among them).  Returns the hash's state
# when it is final already (then nothing is written), else nil.
_MIRROR_LUA = b"""
local n = tonumber(ARGV[2])
local cur = redis.call('HGET', KEYS[1], 'state')
local new
for i = 3 + n, #ARGV, 2 do
  if ARGV[i] == 'state' then new = ARGV[i + 1] end
end
for i = 3, 2 + n do
  if cur == ARGV[i] then return cur end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3 + n))
for i = 3, 2 + n do
  if new == ARGV[i] then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
end
return false
"""
_MIRROR = Script(None, _MIRROR_LUA)   # the client is given per call


def mirror_state(client, objective_id: str, fields: dict[str, str], final_ttl_s: int):
    """Write ``fields`` (``state`` and what goes with it: ``action``,
    ``result`` JSON) into the objective's Redis hash
    (:func:`swarmd.constants.objective_key`) unless the hash holds a final
    state (:data:`FINAL_STATES`) already: a final state is never overwritten,
    by any writer (one Lua script: atomic).  A final ``state`` written sets
    the hash to expire after ``final_ttl_s`` seconds.

    ``client``: a Redis client, or a pipeline (then the reply comes with its
    ``execute()``).  Returns (or the pipeline replies) the final state kept,
    as bytes (nothing written), or ``None`` once written."""
    pairs = [item for pair in fields.items() for item in pair]
    return _MIRROR(keys=[K.objective_key(objective_id)],
                   args=[final_ttl_s, len(FINAL_STATES), *FINAL_STATES, *pairs], client=client)
