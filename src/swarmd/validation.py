"""The one validation layer: YAML with line numbers, pydantic models, every problem reported.

Every input swarmd reads from a user (``llm_config.yaml``, ``policy.yaml``, objectives,
cost profiles) is a pydantic model checked here: :func:`parse_yaml` / :func:`read_yaml`
give the data plus a map from key path to its 1-based line (:class:`YamlDoc`);
:func:`validate` runs ``model_validate`` and raises every problem at once as an
:class:`InputError` of :class:`Problem` items (file, line, dotted key path, expected,
found), one per line of its message::

    llm_config.yaml:23: tiers.LOCAL_FAST[0].price_per_mtok_in: expected a number >= 0, found -1

Validators inside the models raise :class:`Invalid` (a ``ValueError``) with ``(key path,
expected, found)`` items relative to where they sit.  ``ConfigError``, ``PolicyError``,
``ObjectiveError`` and ``ProfileError`` derive from :class:`InputError`, hence from
:class:`swarmd.errors.BadInput` (exit 2) and ``ValueError``.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, NamedTuple, Sequence, TypeVar, Union

import yaml
from pydantic import BaseModel, ValidationError

from swarmd.errors import BadInput

#: A key path: mapping keys (str) and list indexes (int), outermost first.
Loc = tuple[Any, ...]
M = TypeVar("M", bound=BaseModel)


class Problem(NamedTuple):
    """One thing wrong with an input.

    ``file``: the file (or a label such as ``"objective"``; ``None`` when
    unknown); ``line``: 1-based line in it (``None`` when unknown); ``key``:
    dotted key path (``rules[3].decision``; ``""`` for the whole document);
    ``expected``/``found``: short human-readable texts.
    """

    file: str | None
    line: int | None
    key: str
    expected: str
    found: str

    def __str__(self) -> str:
        where = (self.file or "<input>") + (f":{self.line}" if self.line else "")
        return f"{where}: {self.key + ': ' if self.key else ''}expected {self.expected}, found {self.found}"


class InputError(BadInput, ValueError):
    """An input (file or objective) with one or more problems; the message
    lists every problem, one per line (see :class:`Problem`).

    Build it from a list of :class:`Problem`, or from one problem's parts:
    ``InputError(file, key, expected, found, line=None)``.  Attributes:
    ``problems`` (all of them, in document order), and the first problem's
    ``file``, ``line``, ``key`` (also as ``key_path``), ``expected``, ``found``.
    """

    def __init__(self, problems: Sequence[Problem] | str | None, key: str = "", expected: str = "",
                 found: str = "", line: int | None = None):
        if problems is None or isinstance(problems, str):
            problems = [Problem(problems, line, key, expected, found)]
        if not problems:
            raise TypeError("an InputError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        self.file, self.line, self.key, self.expected, self.found = self.problems[0]
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):     # pickles (e.g. across processes) with every problem
        return type(self), (self.problems,)

    @property
    def key_path(self) -> str:
        """The first problem's dotted key path (same as ``key``)."""
        return self.key


class Invalid(BadInput, ValueError):
    """Raised by a model's validator: one or more ``(loc, expected, found)``
    items, ``loc`` relative to the value the validator checks (``()`` for the
    value itself, ``("chain", 0)`` for a key below it).  pydantic wraps it (a
    ``ValueError``) in its ``ValidationError``; :func:`validate` unpacks the
    items into :class:`Problem` s, so it never reaches a caller."""

    def __init__(self, *items: tuple[Loc, str, str]):
        self.items = items
        super().__init__("; ".join(f"{dotted(loc)}: expected {e}, found {f}" for loc, e, f in items))

    @classmethod
    def raise_any(cls, items: Iterable[tuple[Loc, str, str]]) -> None:
        """Raise an :class:`Invalid` with ``items`` unless there are none."""
        items = tuple(items)
        if items:
            raise cls(*items)

    @classmethod
    def check_refs(cls, refs: Iterable[tuple[Loc, Any]], known: Collection, what: str) -> None:
        """Raise for every ``(loc, name)`` of ``refs`` whose name is not in
        ``known``: expected ``what (known names)``, found the name."""
        listed = f"{what} ({', '.join(map(str, known))})"
        cls.raise_any((loc, listed, repr(name)) for loc, name in refs if name not in known)


# --------------------------------------------------------------------------- YAML


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML document: ``data`` (plain dicts/lists/scalars), ``lines``
    (key path → 1-based line of the key, or of the item for list entries;
    ``()`` → the document's first line) and ``file`` (as given)."""

    data: Any
    lines: dict[Loc, int]
    file: str | None


def _line_map(node: yaml.Node | None, path: Loc, out: dict[Loc, int]) -> dict[Loc, int]:
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value,)
            out[sub] = key.start_mark.line + 1
            _line_map(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _line_map(value, path + (i,), out)
    return out


def parse_yaml(text: str, file: str | None, error: type[InputError] = InputError) -> YamlDoc:
    """Parse YAML ``text`` once (safe loader) into a :class:`YamlDoc`.

    Raises ``error`` (an :class:`InputError` class) naming the line of a
    syntax error.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(file, "", "valid YAML", str(getattr(exc, "problem", None) or exc),
                    mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    return YamlDoc(data, _line_map(node, (), {}), file)


def read_yaml(path: str | Path, error: type[InputError] = InputError, file: str | None = None) -> YamlDoc:
    """Read and parse the YAML file at ``path`` (``file``: the name shown in
    problems, default ``str(path)``).  Raises ``error`` for a missing,
    unreadable or non-UTF-8 file and for YAML syntax errors."""
    file = str(path) if file is None else file
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(file, "", "a readable YAML file", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise error(file, "", "UTF-8 text", "bytes that are not UTF-8") from None
    return parse_yaml(text, file, error)


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of its nearest ancestor in ``lines`` (a missing
    key is reported on the line of the mapping that lacks it)."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


# --------------------------------------------------------------------------- pydantic errors


def dotted(loc: Loc) -> str:
    """``("rules", 3, "decision")`` → ``"rules[3].decision"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def short(value: Any, limit: int = 80) -> str:
    """``repr`` of a found value, ``null`` for None, cut at ``limit`` characters."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at ``loc`` under
    ``model`` (following fields, list items and dict values), or None."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            tp = args[0]
        elif origin is dict and args:
            tp = args[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _keys(model: type[BaseModel] | None) -> list[str]:
    return [] if model is None else [f.alias or name for name, f in model.model_fields.items()
                                     if not f.exclude]


def _num(x: Any) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _range(model: type[BaseModel], loc: Loc) -> str:
    """Both bounds of the field at ``loc`` (``">= 0 and <= 1"``), from its
    constraints; ``""`` when it is not a model field with bounds."""
    parent = model_at(model, loc[:-1]) if loc else None
    field = parent.model_fields.get(loc[-1]) if parent and isinstance(loc[-1], str) else None
    ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return " and ".join(f"{op} {_num(getattr(m, attr))}" for m in (field.metadata if field else ())
                        for attr, op in ops.items() if getattr(m, attr, None) is not None)


_TYPES = {
    "float_parsing": "a number", "float_type": "a number", "int_parsing": "an integer",
    "int_type": "an integer", "int_from_float": "an integer", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "bool_type": "true or false",
    "bool_parsing": "true or false", "finite_number": "a finite number",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def explain(err: dict, model: type[BaseModel]) -> list[tuple[Loc, str, str]]:
    """``(loc, expected, found)`` items for one pydantic error dict of
    ``model.model_validate`` (:class:`Invalid` items are expanded)."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    kind, ctx, found = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "value_error" and isinstance(ctx.get("error"), Invalid):
        return [(loc + tuple(sub), expected, got) for sub, expected, got in ctx["error"].items]
    if kind == "extra_forbidden":
        known = _keys(model_at(model, loc[:-1]))
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return [(loc, "a known key" + (f" ({', '.join(known)})" if known else ""),
                 f"unknown key {loc[-1]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))]
    if kind == "missing":
        return [(loc, "this key to be set", "nothing")]
    if kind == "model_type":
        known = _keys(model_at(model, loc))
        return [(loc, "a mapping" + (f" with keys {', '.join(known)}" if known else ""),
                 f"{short(found)} ({type(found).__name__})")]
    if kind == "literal_error":
        return [(loc, f"one of {ctx.get('expected')}", short(found))]
    if kind in _BOUNDS:
        return [(loc, "a number " + (_range(model, loc) or f"{_BOUNDS[kind]} {_num(next(iter(ctx.values()), '?'))}"),
                 short(found))]
    if kind in ("too_short", "string_too_short"):
        return [(loc, "a non-empty value", short(found))]
    if kind == "string_pattern_mismatch":
        return [(loc, f"text matching {ctx.get('pattern')}", short(found))]
    if kind in _TYPES:
        return [(loc, _TYPES[kind], f"{short(found)} ({type(found).__name__})")]
    return [(loc, err["msg"].removeprefix("Value error, "), short(found))]


def problems_of(exc: ValidationError, model: type[BaseModel], file: str | None,
                lines: dict[Loc, int] | None = None, line: int | None = None) -> list[Problem]:
    """Every problem of a pydantic ``ValidationError`` raised by ``model``,
    each with ``file``, its line (looked up in ``lines``; ``line`` when there
    is no map, e.g. a JSONL line) and dotted key path; duplicates dropped;
    in line order (problems without a line first, in the model's field order)."""
    out: dict[tuple[str, str], Problem] = {}
    for err in exc.errors():
        for loc, expected, found in explain(err, model):
            at = line_of(lines, loc) if lines else line
            out.setdefault((dotted(loc), expected), Problem(file, at, dotted(loc), expected, found))
    return sorted(out.values(), key=lambda p: p.line or 0)


def validate(model: type[M], data: Any, error: type[InputError] = InputError, *, file: str | None = None,
             lines: dict[Loc, int] | None = None, line: int | None = None,
             context: dict | None = None) -> M:
    """``model.model_validate(data, context=context)``; on failure raise
    ``error`` listing every problem (see :func:`problems_of`)."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise error(problems_of(exc, model, file, lines, line)) from None


def validate_yaml(model: type[M], doc: YamlDoc, error: type[InputError] = InputError) -> M:
    """:func:`validate` a :class:`YamlDoc` (problems carry its file and lines)."""
    return validate(model, doc.data, error, file=doc.file, lines=doc.lines)
