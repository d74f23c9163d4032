"""Execution traces, checking: one validation of a replayed step, pass or why not.

:func:`check` evaluates a :data:`~swarmd.agent.traces.model.Validation`
against a step's output, exit code and the objective's workspace (slot
values filled in; ``output_matches`` adds its named groups to them).  Paths
outside the workspace fail.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema

from swarmd.agent.traces.model import ExitCode, FileExists, JsonSchema, OutputContains, OutputMatches, Validation
from swarmd.agent.traces.params import fill


def check(validation: Validation, output: str, exit_code: int | None, workspace: str | Path,
          values: dict[str, str]) -> str | None:
    """Check one validation of a step that ran: ``None`` when it passes, else
    why it failed.  ``values``: slot values (a passing ``output_matches`` adds
    its named groups to it).  A path outside the workspace fails."""
    if isinstance(validation, ExitCode):
        return None if exit_code == validation.equals else f"exit code {exit_code}, expected {validation.equals}"
    if isinstance(validation, FileExists):
        path = fill(validation.path, values)
        return None if _in_workspace(workspace, path) and os.path.exists(Path(workspace) / path) \
            else f"{path} does not exist in the workspace"
    if isinstance(validation, OutputContains):
        text = fill(validation.text, values)
        return None if text in output else f"output lacks {text[:80]!r}"
    if isinstance(validation, OutputMatches):
        m = re.search(validation.pattern, output, re.MULTILINE)
        if m is None:
            return f"output does not match {validation.pattern[:80]!r}"
        values.update({k: v for k, v in m.groupdict().items() if v is not None})
        return None
    if isinstance(validation, JsonSchema):
        text = output
        if validation.path is not None:
            path = fill(validation.path, values)
            if not _in_workspace(workspace, path):
                return f"{path} is outside the workspace"
            try:
                text = (Path(workspace) / path).read_text(encoding="utf-8")
            except OSError as exc:
                return f"cannot read {path}: {exc.strerror or exc}"
        try:
            jsonschema.validate(json.loads(text), validation.json_schema)
        except ValueError as exc:
            return f"not JSON: {exc}"
        except jsonschema.ValidationError as exc:
            return f"JSON schema: {exc.message[:120]}"
        return None
    raise TypeError(f"unknown validation {validation!r}")       # unreachable: the union is closed


def _in_workspace(workspace: str | Path, path: str) -> bool:
    root = os.path.realpath(workspace)
    return os.path.realpath(os.path.join(root, path)).startswith(root + os.sep) or \
        os.path.realpath(os.path.join(root, path)) == root

