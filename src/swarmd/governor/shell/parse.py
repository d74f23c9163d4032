"""Parsing a command line: bashlex's tree (of :func:`_prepare`'s text) flattened by :class:`_Walker` into simple commands and findings; :func:`parse_command` tries the fast lexer first."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

import bashlex
import bashlex.errors
import bashlex.subst

from ..policy import Decision
from .fastlex import fast_parse
from .ir import Parsed, Redirect, Simple, Word, verdict, raw_word_features, unsafe_subscript


def _guard_bashlex() -> None:
    """Make bashlex raise, instead of looping forever, on a ``${`` with no ``}``.

    bashlex 0.18's ``subst._paramexpand`` looks for the closing brace with
    ``str.find``; when there is none it gets -1 and hands back index 0, so
    ``_expandwordinternal`` restarts the word from its beginning for ever (a
    hostile line such as ``echo ``'${'`` makes ``decide`` never return). Bash
    itself calls such a word a bad substitution; this wrapper raises bashlex's
    own ``ParsingError`` for it, which the governor turns into a deny. Applied
    once at import; idempotent.
    """
    original = bashlex.subst._paramexpand
    if getattr(original, "_swarmd_guarded", False):
        return

    def _paramexpand(parserobj, string, sindex):
        z = sindex + 1
        if z < len(string) and string[z] == "{" and string.find("}", z + 1) < 0:
            raise bashlex.errors.ParsingError("bad substitution: no closing '}'", string, sindex)
        return original(parserobj, string, sindex)

    _paramexpand._swarmd_guarded = True  # type: ignore[attr-defined]
    bashlex.subst._paramexpand = _paramexpand

_guard_bashlex()

class _Walker:
    """Flattens a bashlex AST into :class:`Simple` commands and findings.

    ``src``: the text bashlex parsed (see :func:`_prepare`); ``quoted_heredocs``:
    positions of ``<<`` whose delimiter was quoted (their bodies are not expanded).
    """

    def __init__(self, src: str, quoted_heredocs: frozenset[int] = frozenset()):
        self.src = src
        self.quoted_heredocs = quoted_heredocs
        self.commands: list[Simple] = []
        self.issues: list[Decision] = []

    def parameter(self, value: str) -> None:
        """Findings for one ``${...}`` / ``$name`` expansion (bashlex does not
        parse what is inside ``${...}``, and bash evaluates some of it)."""
        if any(x in value for x in ("$(", "`", "<(", ">(")):
            self.issues.append(verdict("deny", "shell.nested-expansion",
                                  f"command substitution inside ${{{value[:40]}}} is not judged"))
        elif value.startswith("!"):
            self.issues.append(verdict("deny", "shell.indirect-expansion",
                                  f"indirect expansion ${{{value[:40]}}} (the name is computed at run time)"))
        elif re.search(r"@[PEAKa]", value) and re.search(r"@[PEAKa]\Z", value):
            self.issues.append(verdict("deny", "shell.nested-expansion",
                                  f"${{{value[:40]}}}: @P/@E transformations expand prompts and escapes"))
        elif unsafe_subscript(value):
            self.issues.append(verdict("deny", "shell.arithmetic-eval",
                                  f"${{{value[:40]}}}: an array subscript is evaluated (can run commands)"))

    def word(self, node: bashlex.ast.node) -> Word:
        dynamic = tilde = False
        params: list[str] = []
        for p in getattr(node, "parts", []):
            k = p.kind
            if k == "parameter":
                dynamic = True
                params.append(getattr(p, "value", "") or "")
                self.parameter(params[-1])
            elif k in ("commandsubstitution", "processsubstitution"):
                dynamic = True
                self.node(p.command)
            elif k == "tilde":
                tilde = True
            else:
                self.issues.append(verdict("deny", "shell.unsupported-syntax", f"word part {k!r} is not supported"))
        raw = self.src[node.pos[0]:node.pos[1]]
        glob, brace, ansi = raw_word_features(raw)
        if ansi and not dynamic:
            dynamic = True
        return Word(node.word, dynamic, glob, tilde, brace, ansi, tuple(params))

    def redirect(self, node: bashlex.ast.node) -> Redirect:
        op = node.type
        if op in ("<<", "<<-"):
            body = getattr(node, "heredoc", None)
            text = getattr(body, "value", "") if body is not None else ""
            if node.pos[0] not in self.quoted_heredocs and any(x in text for x in ("$(", "`", "${", "$[")):
                self.issues.append(verdict("deny", "shell.heredoc-expansion",
                                      "unquoted here-document with $(..), `..` or ${..} (expansions are not judged;"
                                      " quote the delimiter: <<'EOF')"))
            return Redirect(op, None)
        out = node.output
        if isinstance(out, int) or out is None:
            return Redirect(op, None)
        return Redirect(op, self.word(out))

    def command(self, node: bashlex.ast.node) -> None:
        assigns: list[Word] = []
        words: list[Word] = []
        redirects: list[Redirect] = []
        for p in node.parts:
            if p.kind == "assignment" and not words:
                assigns.append(self.word(p))
            elif p.kind in ("word", "assignment"):
                words.append(self.word(p))
            elif p.kind == "redirect":
                redirects.append(self.redirect(p))
            else:
                self.node(p)
        self.commands.append(Simple(tuple(assigns), tuple(words), tuple(redirects)))

    def node(self, node: bashlex.ast.node) -> None:
        k = node.kind
        if k == "command":
            self.command(node)
        elif k in ("list", "pipeline"):
            parts = node.parts
            for i, p in enumerate(parts):
                if k == "list" and p.kind == "command" and i >= 2 and parts[i - 1].kind == "operator" \
                        and parts[i - 1].op == "&&" and parts[i - 2].kind == "command":
                    before = len(self.commands)
                    self.node(p)
                    if len(self.commands) == before + 1:    # no substitution inside: see Simple.gated
                        self.commands[-1] = replace(self.commands[-1], gated=True)
                    continue
                if p.kind == "operator":
                    if p.op == "&":
                        self.issues.append(verdict("ask", "shell.background", "background job (&) outlives the judged command"))
                    elif p.op not in (";", "&&", "||", "\n"):
                        self.issues.append(verdict("deny", "shell.unsupported-syntax", f"operator {p.op!r}"))
                elif p.kind in ("pipe", "reservedword"):
                    continue
                else:
                    self.node(p)
        elif k == "compound":
            items = node.list
            if len(items) > 1 and items[0].kind == "reservedword" and items[0].word == "(" \
                    and items[1].kind == "compound":
                self.issues.append(verdict("deny", "shell.unsupported-syntax", "arithmetic command (( ))"))
            for p in items:
                if p.kind != "reservedword":
                    self.node(p)
            reds = [self.redirect(r) for r in getattr(node, "redirects", [])]
            if reds:
                self.commands.append(Simple((), (), tuple(reds), holder=True))
        elif k in ("for", "while", "until", "if"):
            if k in ("while", "until") and _endless(node, k):
                self.issues.append(verdict("ask", "shell.endless-loop", f"{k} loop that never ends on its own"))
            listed = []
            for p in node.parts:
                if p.kind == "word":
                    listed.append(self.word(p))
                elif p.kind != "reservedword":
                    self.node(p)
            if any(w.glob for w in listed):  # a for list: the shell expands its globs (judged as paths)
                self.commands.append(Simple((), (), (), holder=True, expands=tuple(listed)))
        elif k == "function":
            self.issues.append(verdict("deny", "shell.function-definition", "shell function definitions (e.g. fork bombs)"))
        elif k in ("reservedword", "operator", "pipe"):
            return
        elif k == "word":
            self.word(node)
        else:
            self.issues.append(verdict("deny", "shell.unsupported-syntax", f"{k} is not supported"))

def _endless(node: bashlex.ast.node, kind: str) -> bool:
    """True for ``while true``/``while :``/``until false`` loops (the condition
    is the list between the first reserved word and ``do``)."""
    parts = [p for p in node.parts if p.kind != "reservedword"]
    if not parts:
        return False
    cond = parts[0]
    if cond.kind == "list":
        cond = next((p for p in cond.parts if p.kind == "command"), cond)
    words = [w.word for w in getattr(cond, "parts", []) if getattr(w, "kind", "") == "word"] \
        if cond.kind == "command" else []
    return words in ((["true"], [":"]) if kind == "while" else (["false"],))

_ARITH_SAFE = re.compile(r"[\s0-9A-Za-z_+\-*/%<>=!&|^~?:,()$]*")

def _prepare(command: str) -> tuple[str, frozenset[int], Decision | None]:
    """Rewrite ``command`` so that bashlex 0.18 can parse what bash accepts,
    without changing any position (the walker slices words by position).

    Returns ``(text, quoted_heredocs, problem)``:

    - ``<<'EOF'``/``<<"EOF"``/``<<\\EOF``: bashlex keeps the quotes in the
      delimiter and never finds its end; the quotes are blanked and the ``<<``
      position recorded (a quoted delimiter means: the body is not expanded);
    - ``$((expr))``: bashlex has no arithmetic expansion; an expression of
      numbers, names and operators becomes a parameter ``$____`` of the same
      length (a dynamic word); anything else (``$(..)``, backticks, subscripts
      inside) is ``problem`` (``shell.arithmetic-eval``, deny);
    - ``&&``/``||`` inside ``$(..)``: bashlex fails on them; they become ``;``
      (the judge looks at each command, not at how they are joined);
    - a line with a here-document gets a final newline.
    """
    out = list(command)
    quoted: set[int] = set()
    heredoc = False
    i, n = 0, len(command)
    stack: list[str] = []  # saved quote state for each open $( / (
    quote = ""
    in_subst = 0
    while i < n:
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = ""
            i += 1
            continue
        if c == "\\":
            i += 2
            continue
        if quote == '"' and c == '"':
            quote = ""
            i += 1
            continue
        if command.startswith("$((", i):
            j, depth = i + 3, 2
            while j < n and depth:
                depth += {"(": 1, ")": -1}.get(command[j], 0)
                j += 1
            expr = command[i + 3:j - 2]
            if depth or not _ARITH_SAFE.fullmatch(expr) or "$(" in expr:
                return command, frozenset(), verdict("deny", "shell.arithmetic-eval",
                                                f"arithmetic expansion $(({expr[:40]})) is not a plain expression")
            out[i:j] = "$" + "_" * (j - i - 1)
            i = j
            continue
        if command.startswith("$(", i):
            stack.append(quote)
            quote = ""
            in_subst += 1
            i += 2
            continue
        if quote == '"':
            i += 1
            continue
        if c == "'":
            quote = "'"
        elif c == '"':
            quote = '"'
        elif c == "(":
            stack.append("(")
        elif c == ")" and stack:
            prev = stack.pop()
            if prev != "(":
                in_subst -= 1
                quote = prev
        elif in_subst and command.startswith(("&&", "||"), i):
            out[i:i + 2] = "; "
            i += 2
            continue
        elif command.startswith("<<<", i):
            i += 3
            continue
        elif command.startswith("<<", i):
            heredoc = True
            j = i + 2 + (command.startswith("-", i + 2))
            while j < n and command[j] in " \t":
                j += 1
            if j < n and command[j] in "'\"":
                end = command.find(command[j], j + 1)
                if end > j:
                    out[j:end + 1] = command[j + 1:end] + "  "
                    quoted.add(i)
                    i = end + 1
                    continue
            elif j < n and command[j] == "\\":
                m = re.match(r"\\([A-Za-z0-9_]+)", command[j:])
                if m:
                    out[j:j + m.end()] = m.group(1) + " "
                    quoted.add(i)
                    i = j + m.end()
                    continue
            i += 2
            continue
        i += 1
    text = "".join(out)
    if heredoc and not text.endswith("\n"):
        text += "\n"
    return text, frozenset(quoted), None

@lru_cache(maxsize=4096)
def parse_command(command: str) -> Parsed:
    """Parse a command line into a :class:`Parsed` (cached, never raises).

    Parse failures and unsupported syntax become deny issues.
    """
    fast = fast_parse(command)
    if fast is not None:
        return fast
    return bashlex_parse(command)

def bashlex_parse(command: str) -> Parsed:
    """The general path: bashlex's parse tree (of :func:`_prepare`'s text),
    flattened by :class:`_Walker`."""
    text, quoted, problem = _prepare(command)
    if problem is not None:
        return Parsed((), (problem,), None)
    try:
        trees = bashlex.parse(text)
    except (bashlex.errors.ParsingError, NotImplementedError, IndexError, AttributeError,
            TypeError, ValueError, KeyError, AssertionError, RecursionError) as e:
        msg = str(e).split("\n")[0][:120]
        return Parsed((), (verdict("deny", "shell.parse-error", f"cannot fully parse the command ({msg})"),), None)
    w = _Walker(text, quoted)
    try:
        for t in trees:
            w.node(t)
    except (AttributeError, TypeError, IndexError, RecursionError) as e:  # unknown AST shape
        return Parsed((), (verdict("deny", "shell.parse-error", f"unexpected syntax tree ({type(e).__name__})"),), None)
    plain = None
    if len(trees) == 1 and len(w.commands) == 1 and not w.issues:
        c = w.commands[0]
        if not c.assigns and not c.redirects and c.words and not c.holder and c.words[0].text != "cd" \
                and not any(x.dynamic or x.brace for x in c.words):
            plain = c.words
    return Parsed(tuple(w.commands), tuple(w.issues), plain)
