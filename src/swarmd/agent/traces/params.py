"""Execution traces, the goal side: parameters and representations.

:func:`extract_params` finds a goal's parameters (URLs, quoted text,
versions, paths, whole numbers; named by kind and rank, no model);
:func:`template_of` masks them; :func:`represent` / :func:`goal_representation`
give the ``tokens-v1`` or MiniLM representation and :func:`goal_similarity`
compares a goal with a trace.  :func:`fill` and :func:`slot` put values into
and take them out of ``{{name}}`` slots; :func:`quote_span` quotes free text.
Values matching :data:`UNSAFE_VALUE` are never substituted.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from swarmd.agent.traces.model import EMBEDDING, REPRESENTATION, SLOT, Param, Trace
from swarmd.config import TracesConfig
from swarmd.memory.embed import EmbedderUnavailable, shared_embedder

#: default ``traces.min_embedding_similarity``: cosine of MiniLM template embeddings a trace needs
#: (measured by ``python bench/traces.py --similarity``; how 0.92 was chosen: docs/design.md).
#: The number is written once, as the config field's default.
MIN_EMBEDDING_SIMILARITY: float = TracesConfig.model_fields["min_embedding_similarity"].default
#: characters a parameter value may not hold to be substituted (shell syntax, quotes, globs), and a
#: leading "-" (it would become an option); quoted text may hold spaces, nothing else may anyway
UNSAFE_VALUE = re.compile(r"[;&|$`\\<>(){}!*?\[\]'\"#\n\r]|^-")


_PARAM_RE = re.compile(
    r"(?P<url>https?://[^\s'\"`<>]+)"
    r"|'(?P<q1>[^'\n]+)'|\"(?P<q2>[^\"\n]+)\"|`(?P<q3>[^`\n]+)`"
    r"|(?<![\w.])(?P<version>v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.]+)?)(?![\w.]*\w)"
    r"|(?<![\w/.-])(?!(?:e\.g|i\.e)\b)(?P<path>(?:\.{0,2}/)?(?:[\w.-]+/)+[\w.-]*|[\w-]+(?:\.[\w-]+)*\.[A-Za-z][A-Za-z0-9]{0,7})"
    r"(?![\w/])"
    r"|(?<![\w.])(?P<number>\d+)(?![\w.]*\w)")
_WORD = re.compile(r"<\w+>|[a-z]+")
_STOP = frozenset("a an the and or of in on to for with it its is be by from at as this that".split())


def extract_params(goal: str) -> list[Param]:
    """The parameters of ``goal``, in order of appearance: URLs, quoted text
    ('…', "…", `…`), versions (``1.2.3``, ``v1.2.3-rc1``), paths (with a
    ``/`` or a file suffix such as ``CHANGELOG.md``), whole numbers.  Names are
    kind + rank (``path1``, ``path2``...); deterministic, no model."""
    counts: dict[str, int] = {}
    out = []
    for m in _PARAM_RE.finditer(goal):
        kind = m.lastgroup
        value = m.group(kind)
        if kind in ("q1", "q2", "q3"):
            kind = "quoted"
        counts[kind] = counts.get(kind, 0) + 1
        suffix = Path(value.rstrip("/")).suffix.lower() if kind == "path" else ""
        out.append(Param(name=f"{kind}{counts[kind]}", kind=kind, example=value, suffix=suffix))
    return out


def template_of(goal: str) -> str:
    """``goal`` with every parameter replaced by ``<kind>``."""
    def repl(m: re.Match) -> str:
        kind = m.lastgroup
        return "<quoted>" if kind in ("q1", "q2", "q3") else f"<{kind}>"
    return _PARAM_RE.sub(repl, goal)


def represent(goal: str) -> dict[str, float]:
    """The ``tokens-v1`` representation of ``goal``: unit-length weights of
    the lower-cased word tokens of its template (stopwords dropped,
    parameters as ``<kind>``)."""
    counts: dict[str, float] = {}
    for token in _WORD.findall(template_of(goal).lower()):
        if token not in _STOP:
            counts[token] = counts.get(token, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {k: v / norm for k, v in sorted(counts.items())}


def similarity(a: dict[str, float] | list[float], b: dict[str, float] | list[float]) -> float:
    """Cosine similarity of two unit-length representations of the same kind
    (token weights: 0..1; embeddings: -1..1)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return sum(v * b.get(k, 0.0) for k, v in a.items())
    return float(np.dot(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)))


_ENCODER: list = []                     # [Embedder] once loaded, [None] once found unavailable
_ENCODER_LOCK = threading.Lock()


def goal_representation(goal: str) -> tuple[str, dict[str, float] | list[float]]:
    """``(kind, representation)`` of ``goal``: the :data:`EMBEDDING` of its
    template (384 floats rounded to 6 decimals) with the process's shared
    embedder, loaded on first call; :data:`REPRESENTATION` token weights when
    the embedder cannot be loaded (warning logged once per process)."""
    with _ENCODER_LOCK:
        if not _ENCODER:
            try:
                embedder = shared_embedder()
                embedder.embed_one("warm up")
                _ENCODER.append(embedder)
            except EmbedderUnavailable as exc:
                logger.warning("goal embedder unavailable, execution traces fall back to {}: {}",
                               REPRESENTATION, str(exc).splitlines()[0])
                _ENCODER.append(None)
        embedder = _ENCODER[0]
    if embedder is None:
        return REPRESENTATION, represent(goal)
    return EMBEDDING, [round(float(x), 6) for x in embedder.embed_one(template_of(goal))]


def goal_similarity(kind: str, rep: dict[str, float] | list[float], goal: str, trace: Trace,
                    min_similarity: float, min_embedding_similarity: float) -> tuple[float, float]:
    """``(similarity, threshold)`` of a goal (its ``kind`` and ``rep``) and
    ``trace``: their cosine when both are of one kind, with that kind's
    threshold; else the ``tokens-v1`` cosine of both goal texts with
    ``min_similarity`` (see the module docstring)."""
    if kind == trace.representation_kind:
        return similarity(rep, trace.representation), \
            (min_embedding_similarity if kind == EMBEDDING else min_similarity)
    return similarity(represent(goal), represent(trace.goal)), min_similarity


def fill(value: Any, values: dict[str, str]) -> Any:
    """``value`` (str, or dict/list of them) with every ``{{name}}`` replaced by ``values[name]``.
    Raises ``KeyError`` for a slot without a value."""
    if isinstance(value, str):
        return SLOT.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value


def slot(value: Any, params: list[Param], bare_dirs: bool = False) -> Any:
    """``value`` with every whole occurrence of a parameter's example replaced
    by its slot (longest examples first; numbers only as whole numbers).
    ``bare_dirs``: a directory given as ``src/`` also matches ``src`` (for
    tool arguments; in an answer the bare word is likely prose: "tests")."""
    if isinstance(value, dict):
        return {k: slot(v, params, bare_dirs) for k, v in value.items()}
    if isinstance(value, list):
        return [slot(v, params, bare_dirs) for v in value]
    if not isinstance(value, str):
        return value
    forms = [(p.example, p.name) for p in params]
    if bare_dirs:                                       # "src/" in the goal, "src" in a command
        forms += [(p.example.rstrip("/"), p.name) for p in params
                  if p.kind == "path" and p.example.endswith("/") and len(p.example) > 1]
    for example, name in sorted(forms, key=lambda f: -len(f[0])):
        value = re.sub(rf"(?<![\w.{{-]){re.escape(example)}(?![\w}}-]|\.\w|/)" if not example.endswith("/")
                       else rf"(?<![\w.{{-]){re.escape(example)}(?![\w}}-]|\.\w)", "{{" + name + "}}", value)
    return value


def quote_span(goal: str, value: str) -> str | None:
    """``goal`` with its first occurrence of ``value`` (ignoring case; the
    goal's own spelling is kept) in single quotes, a quoted parameter from
    then on; ``None`` when ``value`` is empty, unsafe (:data:`UNSAFE_VALUE`)
    or not in ``goal``."""
    value = value.strip()
    at = goal.lower().find(value.lower()) if value else -1
    if at < 0 or UNSAFE_VALUE.search(value):
        return None
    return f"{goal[:at]}'{goal[at:at + len(value)]}'{goal[at + len(value):]}"


