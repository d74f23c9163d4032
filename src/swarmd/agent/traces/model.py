"""Execution traces, the data: a trace, its steps and their typed validations.

:class:`Trace` is the immutable part (goal, its representation, parameters,
preconditions, steps with ``expect`` validations, answer, who learned it at
what cost); :class:`StoredTrace` adds the statistics kept in columns.  A
:data:`Validation` is a pydantic union discriminated on ``type``
(``exit_code``, ``file_exists``, ``output_contains``, ``output_matches``,
``json_schema``).  Anything that does not validate raises :class:`TraceError`
naming the trace and the field: an unusable trace never loads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Literal, Union

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swarmd.governor.governor import TOOL_ARGS
from swarmd.memory.embed import DIM as EMBED_DIM
from swarmd.validation import InputError, Invalid

#: the bag-of-tokens representation kind (fallback, and what older traces hold)
REPRESENTATION = "tokens-v1"
#: the sentence-embedding representation kind (all-MiniLM-L6-v2 int8 of the goal's template)
EMBEDDING = "minilm-l6-int8-v1"
#: a ``{{name}}`` slot in a step argument, validation or answer
SLOT = re.compile(r"\{\{(\w+)\}\}")


class TraceError(InputError):
    """A trace that cannot be used (corrupted or hand-edited row, unknown
    validation type, bad regex or schema, dangling slot): every problem,
    each naming the trace (``trace <id> v<version>``) and the field."""


# --------------------------------------------------------------------------- validations


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExitCode(_Model):
    """The step's exit code (process exit status, HTTP status for ``http_get``,
    0 for file tools) equals ``equals``."""

    type: Literal["exit_code"]
    equals: int


class FileExists(_Model):
    """``path`` (slots allowed; relative to the workspace) exists."""

    type: Literal["file_exists"]
    path: str = Field(min_length=1)


class OutputContains(_Model):
    """The step's output contains ``text`` (slots allowed)."""

    type: Literal["output_contains"]
    text: str = Field(min_length=1)


class OutputMatches(_Model):
    """The Python regex ``pattern`` (multiline) is found in the step's output;
    its named groups become slot values for later steps and the answer."""

    type: Literal["output_matches"]
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise Invalid(((), "a Python regular expression", f"{pattern[:60]!r} ({exc})")) from None
        return pattern


class JsonSchema(_Model):
    """The step's output (or the workspace file ``path``) parses as JSON valid
    against ``schema`` (JSON Schema, checked with :mod:`jsonschema`)."""

    type: Literal["json_schema"]
    json_schema: dict = Field(alias="schema")
    path: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("json_schema")
    @classmethod
    def _is_schema(cls, schema: dict) -> dict:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise Invalid(((), "a JSON Schema", f"{exc.message[:80]}")) from None
        return schema


Validation = Annotated[Union[ExitCode, FileExists, OutputContains, OutputMatches, JsonSchema],
                       Field(discriminator="type")]



class Param(_Model):
    """One parameter of the goal: ``name`` (kind + rank), ``kind``, the value
    it had when learned (``example``) and, for paths, the file ``suffix``."""

    name: str
    kind: Literal["url", "quoted", "version", "path", "number"]
    example: str
    suffix: str = ""


class Step(_Model):
    """One tool call: ``tool``, ``args`` (string values may hold slots) and
    the validations it must pass (``expect``)."""

    tool: str
    args: dict[str, Any]
    expect: list[Validation] = Field(default_factory=list)

    @field_validator("tool")
    @classmethod
    def _known_tool(cls, tool: str) -> str:
        if tool not in TOOL_ARGS:
            raise Invalid(((), f"one of the tools ({', '.join(TOOL_ARGS)})", repr(tool)))
        return tool


class Trace(_Model):
    """The immutable part of a trace (see the module docstring); the
    statistics live in :class:`StoredTrace`."""

    goal: str = Field(min_length=1)
    template: str
    representation_kind: Literal["tokens-v1", "minilm-l6-int8-v1"] = REPRESENTATION
    representation: dict[str, float] | list[float]
    params: list[Param]
    preconditions: list[Validation] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    answer: str
    model: str | None = None
    tier: str | None = None
    cost_usd: float = Field(default=0.0, ge=0)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _representation_of_its_kind(self) -> "Trace":
        if self.representation_kind == REPRESENTATION and not isinstance(self.representation, dict):
            Invalid.raise_any([(("representation",), "token weights (an object) for tokens-v1", "a list")])
        if self.representation_kind == EMBEDDING and (not isinstance(self.representation, list)
                                                     or len(self.representation) != EMBED_DIM):
            Invalid.raise_any([(("representation",), f"{EMBED_DIM} floats for {EMBEDDING}",
                                f"{type(self.representation).__name__} of {len(self.representation)}")])
        return self

    @model_validator(mode="after")
    def _slots_defined(self) -> "Trace":
        known = {p.name for p in self.params}
        problems = []
        for i, pre in enumerate(self.preconditions):
            problems += [(("preconditions", i), f"a slot of a parameter ({', '.join(sorted(known)) or 'none'})",
                          f"{{{{{s}}}}}") for s in _slots_of(pre) - known]
        for i, step in enumerate(self.steps):
            unknown = _slots_of(step.args).union(*(_slots_of(v) for v in step.expect))
            problems += [(("steps", i), "a slot of a parameter or of an earlier step's capture",
                          f"{{{{{s}}}}}") for s in sorted(unknown - known)]
            for v in step.expect:
                if isinstance(v, OutputMatches):
                    known |= set(re.compile(v.pattern).groupindex)
        problems += [(("answer",), "a slot of a parameter or capture", f"{{{{{s}}}}}")
                     for s in sorted(_slots_of(self.answer) - known)]
        Invalid.raise_any(problems)
        return self

    def signature(self) -> str:
        """The compatibility key: parameter names with their path suffixes."""
        return signature_of(self.params)

    def content_key(self) -> str:
        """JSON of what a replay does (steps and answer): equal keys, same behaviour."""
        return json.dumps({"steps": [s.model_dump(by_alias=True) for s in self.steps], "answer": self.answer,
                           "pre": [p.model_dump(by_alias=True) for p in self.preconditions]}, sort_keys=True)


def _slots_of(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(SLOT.findall(value))
    if isinstance(value, BaseModel):
        return _slots_of(value.model_dump(by_alias=True, exclude={"pattern"}))
    if isinstance(value, dict):
        return set().union(*[_slots_of(v) for v in value.values()]) if value else set()
    if isinstance(value, list):
        return set().union(*[_slots_of(v) for v in value]) if value else set()
    return set()


@dataclass
class StoredTrace:
    """A trace as stored: ``id``, ``version``, the :class:`Trace`, and its
    statistics (``confidence`` 0..1, ``runs``/``successes``/``failures``
    counts of replays and confirmations, ``saved_usd``: USD the successful
    replays did not spend, ``active``: the current version, ``disabled``)."""

    id: str
    version: int
    trace: Trace
    confidence: float
    runs: int
    successes: int
    failures: int
    saved_usd: float
    active: bool
    disabled: bool
    created_at: float
    updated_at: float

    @property
    def success_rate(self) -> float:
        """``successes / runs`` (1.0 before any run: the learner's own run succeeded)."""
        return self.successes / self.runs if self.runs else 1.0

    def summary(self) -> dict:
        """JSON-ready row for listings: ids, goal, statistics, model, cost."""
        return {"id": self.id, "version": self.version, "goal": self.trace.goal, "steps": len(self.trace.steps),
                "params": [p.name for p in self.trace.params], "confidence": round(self.confidence, 4),
                "runs": self.runs, "successes": self.successes, "failures": self.failures,
                "success_rate": round(self.success_rate, 4), "model": self.trace.model,
                "cost_usd": self.trace.cost_usd, "saved_usd": self.saved_usd, "active": self.active,
                "disabled": self.disabled}



def signature_of(params: Iterable[Param]) -> str:
    """``path1:.csv,path2:.json,version1`` — names with path suffixes."""
    return ",".join(f"{p.name}:{p.suffix}" if p.kind == "path" else p.name for p in params)

