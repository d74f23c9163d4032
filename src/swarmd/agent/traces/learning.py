"""Execution traces, learning: a learner run that ended ``done`` becomes a trace.

:func:`learn` keeps the tool steps that ran, slots the goal's parameters into
their arguments and the answer, derives each step's validations from what
was observed, and binds every number of the answer to an ``output_matches``
capture.  A run that cannot become a trace raises :class:`NotLearnable`
(no step ran; a number in the answer from neither the goal nor an output).
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from swarmd.agent.traces.model import SLOT, Trace, TraceError
from swarmd.agent.traces.params import extract_params, goal_representation, slot, template_of
from swarmd.errors import SwarmdError
from swarmd.validation import validate


class NotLearnable(SwarmdError, ValueError):
    """A learner run that cannot become a trace; the message says why."""


def learn(goal: str, transcript: list[dict], answer: str, *, pre_existing: set[str] | frozenset[str] = frozenset(),
          model: str | None = None, tier: str | None = None, cost_usd: float = 0.0,
          tags: Iterable[str] = ()) -> Trace:
    """The trace of a learner run that ended ``done`` with ``answer``.

    ``transcript``: the agent loop's steps (:mod:`swarmd.agent.loop`);
    the steps that ran become the trace's steps, in order (denied and invalid
    ones are dropped).  ``pre_existing``: workspace-relative paths that
    existed before the run (path parameters among them become
    ``file_exists`` preconditions).  Validations derived per step:
    ``exit_code`` (as observed), ``file_exists`` (the path a ``write_file``
    wrote), ``output_contains`` (a non-number parameter found in the output),
    ``json_schema`` (output that is a JSON object or array: its top-level
    shape).  Every number left in the answer after slotting parameters is
    bound to an ``output_matches`` capture on the last step whose output
    shows it.  Raises :class:`NotLearnable` when no step ran or a number in
    the answer comes from neither the goal nor an output (a replay would
    repeat a stale value).
    """
    params = extract_params(goal)
    ran = [s for s in transcript if s.get("ran")]
    if not ran:
        raise NotLearnable("no tool step ran")
    steps: list[dict] = []
    for s in ran:
        expect: list[dict] = []
        if s.get("exit_code") is not None:
            expect.append({"type": "exit_code", "equals": int(s["exit_code"])})
        if s["tool"] == "write_file":
            expect.append({"type": "file_exists", "path": slot(s["args"].get("path", ""), params)})
        output = _clean_output(s.get("output") or "")
        for p in params:
            if p.kind != "number" and len(p.example) >= 3 and p.example in output:
                expect.append({"type": "output_contains", "text": "{{" + p.name + "}}"})
        schema = _shape_schema(output)
        if schema is not None:
            expect.append({"type": "json_schema", "schema": schema})
        steps.append({"tool": s["tool"], "args": slot(s["args"], params, bare_dirs=True), "expect": expect})
    answer_t = _bind_answer(slot(answer, params), [_clean_output(s.get("output") or "") for s in ran], steps)
    pre = [{"type": "file_exists", "path": "{{" + p.name + "}}"} for p in params
           if p.kind == "path" and p.example.rstrip("/") in pre_existing]
    kind, representation = goal_representation(goal)
    data = {"goal": goal, "template": template_of(goal), "representation_kind": kind, "representation": representation,
            "params": [p.model_dump() for p in params], "preconditions": pre, "steps": steps,
            "answer": answer_t, "model": model, "tier": tier, "cost_usd": round(float(cost_usd), 10),
            "tags": list(tags)}
    return validate(Trace, data, TraceError, file="learned trace")


def _clean_output(output: str) -> str:
    return output[:-len(" [truncated]")] if output.endswith(" [truncated]") else output


_NUMBER = re.compile(r"(?<![\w.{])\d+(?:\.\d+)?(?![\w}]|\.\d)")


def _bind_answer(answer: str, outputs: list[str], steps: list[dict]) -> str:
    """Replace each number of ``answer`` (outside slots) by a capture slot of
    an ``output_matches`` added to the last step whose output shows it."""
    n = 0

    def bind(m: re.Match) -> str:
        nonlocal n
        token = m.group(0)
        for whole_line in (True, False):     # an output line that is just the value is the surest source
            for i in range(len(outputs) - 1, -1, -1):
                pattern = _capture_pattern(outputs[i], token, f"out{n + 1}", whole_line)
                if pattern is not None:
                    n += 1
                    steps[i]["expect"].append({"type": "output_matches", "pattern": pattern})
                    return "{{" + f"out{n}" + "}}"
        raise NotLearnable(f"the answer's value {token!r} comes from neither the goal nor a step's output")

    parts = re.split(r"(\{\{\w+\}\})", answer)
    return "".join(p if SLOT.fullmatch(p) else _NUMBER.sub(bind, p) for p in parts)


def _capture_pattern(output: str, token: str, name: str, whole_line: bool = False) -> str | None:
    """A regex capturing ``token`` in ``output`` by its neighbours on its line
    (up to 15 characters each side, stopping at digits), or ``None`` when the
    token is not there or the pattern's first match would capture something
    else.  ``whole_line``: only where the token is its line's whole text."""
    for m in re.finditer(rf"(?<![\d.]){re.escape(token)}(?![\d]|\.\d)", output):
        start = output.rfind("\n", 0, m.start()) + 1
        end = output.find("\n", m.end())
        end = len(output) if end == -1 else end
        if whole_line and output[start:end].strip() != token:
            continue
        left = re.split(r"\d", output[max(start, m.start() - 15):m.start()])[-1]
        right = re.split(r"\d", output[m.end():min(end, m.end() + 15)])[0]
        number = r"\d+(?:\.\d+)?" if "." in token else r"\d+"
        pattern = (("^" if m.start() - len(left) == start else "") + _loose(left) + f"(?P<{name}>{number})"
                   + _loose(right) + ("$" if m.end() + len(right) == end else ""))
        first = re.search(pattern, output, re.MULTILINE)
        if first is not None and first.group(name) == token:
            return pattern
    return None


def _loose(text: str) -> str:
    """``text`` as a regex, any run of spaces matching any run of whitespace (column widths vary)."""
    return re.sub(r"(?:\\ )+", lambda m: r"\s*", re.escape(text))


def _shape_schema(output: str) -> dict | None:
    try:
        data = json.loads(output)
    except ValueError:
        return None
    if isinstance(data, dict):
        return {"type": "object", "required": sorted(data)}
    if isinstance(data, list):
        schema: dict = {"type": "array", "minItems": 1} if data else {"type": "array"}
        if data and all(isinstance(x, dict) for x in data):
            keys = sorted(set.intersection(*(set(x) for x in data)))
            schema["items"] = {"type": "object", "required": keys}
        return schema
    return None

