"""The fine-tuning dataset (``swarmctl memory export``): verified records only, deduplicated, secrets scrubbed.

Formats, one JSON object per line: ``chat-jsonl`` (``{"messages": [system instruction,
user item, assistant answer]}``) and ``alpaca`` (``{"instruction", "input", "output"}``),
where ``instruction`` and ``item`` are the action's prompt template of the config with the
record's labels and input filled in.  Only records with a known answer are exported,
deduplicated per (action, label set, normalised input), keeping the most trusted source,
then the newest.

Secrets (:data:`SECRET_PATTERNS`: private keys, ``sk-`` keys, AWS key ids, GitHub and Slack
tokens, JWTs, credentials in URLs, ``password=``-style assignments) are replaced in inputs
and answers by ``[REDACTED:<name>]``.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from swarmd.config import Config
from swarmd.errors import BadInput
from swarmd.memory.records import SOURCE_RANK, Memory, Verified, normalise_input

FORMATS = ("chat-jsonl", "alpaca")

#: (name, pattern) of what is scrubbed, most specific first
SECRET_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("private-key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{16,}")),
    ("openai-key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("url-credentials", re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")),
    ("assignment", re.compile(r"(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key)\b(\s*[:=]\s*)['\"]?[^\s'\",;]+")),
)


def scrub(text: str, found: Counter | None = None) -> str:
    """``text`` with every :data:`SECRET_PATTERNS` match replaced by
    ``[REDACTED:<name>]`` (an assignment keeps its key: ``password=[REDACTED:assignment]``);
    ``found`` counts the replacements by pattern name."""
    for name, pattern in SECRET_PATTERNS:
        def repl(m, name=name):
            if found is not None:
                found[name] += 1
            if name == "assignment":
                return m.group(0)[:m.start(1) - m.start(0)] + m.group(1) + f"[REDACTED:{name}]"
            return f"[REDACTED:{name}]"
        text = pattern.sub(repl, text)
    return text


@dataclass
class ExportSummary:
    """Counts of one export: ``written`` lines, records ``read``, left out as
    ``duplicates``, ``no_answer`` (judged wrong without the right answer),
    ``below_value``, ``unknown_action`` (not in the config), and ``secrets``
    replaced by pattern name."""

    path: str
    format: str
    read: int = 0
    written: int = 0
    duplicates: int = 0
    no_answer: int = 0
    below_value: int = 0
    unknown_action: int = 0
    secrets: dict[str, int] = field(default_factory=dict)


def _line(fmt: str, config: Config, r: Verified, found: Counter) -> dict:
    action = config.actions[r.action]
    shown = ", ".join(r.labels)
    instruction = scrub(action.instruction.format(labels=shown), found)
    item = scrub(action.item.format(input=" ".join(r.input.split()), labels=shown), found)
    answer = scrub(r.answer, found)
    if fmt == "alpaca":
        return {"instruction": instruction, "input": item, "output": answer}
    return {"messages": [{"role": "system", "content": instruction}, {"role": "user", "content": item},
                         {"role": "assistant", "content": answer}]}


def export(memory: Memory, config: Config, path: str | Path, fmt: str = "chat-jsonl",
           min_value: float | None = None, since: float | None = None) -> ExportSummary:
    """Write the dataset to ``path`` (``"-"``: standard output; see the module
    docstring); returns the summary.

    ``min_value``: only records whose consolidated value is at least this;
    ``since``: only records verified at or after this unix time.  Raises
    :class:`~swarmd.errors.BadInput` for an unknown format.
    """
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    where, params = "1", []
    if since is not None:
        where, params = "verified_at >= ?", [since]
    summary, found = ExportSummary(str(path), fmt), Counter()
    best: dict[tuple, Verified] = {}
    for r in memory.records(where, tuple(params)):
        summary.read += 1
        if r.answer is None:
            summary.no_answer += 1
            continue
        if min_value is not None and r.value < min_value:
            summary.below_value += 1
            continue
        if r.action not in config.actions:
            summary.unknown_action += 1
            continue
        key = (r.action, ",".join(sorted(r.labels)), normalise_input(r.input))
        if key in best:
            summary.duplicates += 1
            if (SOURCE_RANK[r.source], r.verified_at) <= (SOURCE_RANK[best[key].source], best[key].verified_at):
                continue
        best[key] = r
    stdout = str(path) == "-"
    with contextlib.nullcontext(sys.stdout) if stdout else open(path, "w", encoding="utf-8") as fh:
        for r in best.values():
            fh.write(json.dumps(_line(fmt, config, r, found), ensure_ascii=False) + "\n")
            summary.written += 1
    if stdout:
        fh.flush()
    summary.secrets = dict(found)
    return summary
