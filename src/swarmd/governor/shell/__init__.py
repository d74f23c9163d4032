"""Shell command lines: parsing (bashlex) and judging every simple command.

:func:`parse_command` (cached) turns a line into a flat tuple of :class:`Simple` commands
(every command of every pipeline, chain, subshell, group, loop body and substitution) plus
structural findings; :func:`judge_command` gives the strictest decision over all of them,
with a rule id (``shell.*`` built-in rules are code and cannot be switched off by a
policy; ``files.*``, ``url.*`` and policy rule ids come from paths, URLs and the policy).

Modules: :mod:`.ir` (words, commands, a parsed line), :mod:`.parse` (bashlex and the
walker), :mod:`.fastlex` (the bashlex-free lexer for plain lines), one program table per
family (:mod:`.builtins`, :mod:`.text`, :mod:`.git`, :mod:`.archivers`,
:mod:`.interpreters`, :mod:`.network`; :mod:`.checks` maps program -> check), and
:mod:`.judge`.  Commands run in the bubblewrap sandbox; the judge's job is intent.
Every built-in rule id and why: docs/design.md and docs/governor.md.
"""

from __future__ import annotations

from .fastlex import fast_parse
from .ir import Parsed, Redirect, Simple, Word
from .judge import HARMLESS, harmless, judge_command
from .parse import bashlex_parse, parse_command
from .text import OPTION_TABLES, OptionTable

__all__ = ["HARMLESS", "OPTION_TABLES", "OptionTable", "Parsed", "Redirect", "Simple", "Word", "bashlex_parse",
           "fast_parse", "harmless", "judge_command", "parse_command"]
