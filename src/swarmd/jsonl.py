"""The one JSONL reader: every line checked, every problem reported as ``file:line: why``.

Used by every command that reads JSONL (``swarmctl ask --file``, ``submit
--file``, ``policy check --file``, ``cost-analysis --from-ledger`` on an
export).  Blank lines are skipped; line numbers count every line from 1, so
they match what an editor shows.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from swarmd.errors import BadInput

T = TypeVar("T")

#: At most this many problems are listed in a :class:`JsonlError`; the rest are counted.
MAX_SHOWN = 20


class JsonlError(BadInput, ValueError):
    """A JSONL file with bad lines (exit 2).  ``problems``: every ``file:line: reason``;
    the message lists the first :data:`MAX_SHOWN` of them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_SHOWN] + ([f"... and {len(problems) - MAX_SHOWN} more"]
                                        if len(problems) > MAX_SHOWN else [])
        super().__init__("\n".join(shown))


def _identity(obj: dict) -> Any:
    return obj


def scan_jsonl(path: str | Path, parse: Callable[[dict], T] = _identity) -> tuple[list[tuple[int, T]], list[str]]:
    """``(items, problems)`` of the JSONL file ``path`` (``"-"``: stdin), without raising for bad input.

    ``items``: ``(line number, parse(obj))`` for every good non-blank line, in
    file order.  ``problems``: ``"path:line: reason"`` for every line that is
    not UTF-8, not JSON, not a JSON object, or that ``parse`` rejects by
    raising ``ValueError`` or :class:`~swarmd.errors.BadInput` (its message is
    the reason); ``"path: cannot read: ..."`` for an unreadable file.  For
    callers that add problems of their own (in line order) before reporting;
    the others use :func:`read_jsonl`.
    """
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else Path(path).read_bytes()
    except OSError as exc:
        return [], [f"{path}: cannot read: {exc.strerror or exc}"]
    items, problems = [], []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append(f"{path}:{n}: not UTF-8")
            continue
        except ValueError as exc:
            problems.append(f"{path}:{n}: not JSON ({getattr(exc, 'msg', exc)})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{n}: expected a JSON object, found {type(obj).__name__}")
            continue
        try:
            items.append((n, parse(obj)))
        except (ValueError, BadInput) as exc:
            problems.append(f"{path}:{n}: {exc}")
    return items, problems


def read_jsonl(path: str | Path, parse: Callable[[dict], T] = _identity, *,
               allow_empty: bool = False) -> list[T]:
    """Every non-blank line of the JSONL file ``path`` (``"-"``: stdin) as
    ``parse(obj)``, in file order, checked before any is returned.

    Each line must be UTF-8 and one JSON object; ``parse`` turns the object
    into what the caller wants and raises ``ValueError`` or
    :class:`~swarmd.errors.BadInput` (the message is the reason) when it is
    not acceptable.  Raises :class:`JsonlError` listing every bad line as
    ``path:line: reason`` (see :func:`scan_jsonl`), also for an unreadable
    file and, unless ``allow_empty``, for a file with no objects (``path: no items``).
    """
    items, problems = scan_jsonl(path, parse)
    if problems:
        raise JsonlError(problems)
    if not items and not allow_empty:
        raise JsonlError([f"{path}: no items"])
    return [item for _n, item in items]


def require_strings(*keys: str) -> Callable[[dict], dict]:
    """A ``parse`` for :func:`read_jsonl` that accepts objects whose ``keys``
    are all non-empty strings; otherwise it raises ``ValueError`` (reason:
    ``missing or empty string field(s): ...``), which :func:`read_jsonl`
    reports as ``file:line: why``."""
    def check(obj: dict) -> dict:
        missing = [k for k in keys if not isinstance(obj.get(k), str) or not obj[k].strip()]
        if missing:
            raise ValueError(f"missing or empty string field(s): {', '.join(missing)}")
        return obj
    return check
