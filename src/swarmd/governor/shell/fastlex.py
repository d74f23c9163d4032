"""A hand-written lexer for the provably simple subset of shell lines (no bashlex); it must produce exactly bashlex's parse (tests/governor/test_fast_parse.py fuzzes one against the other)."""

from __future__ import annotations

import re
from dataclasses import replace

from .ir import Parsed, RESERVED, Redirect, Simple, Word, ASSIGNMENT, NotSimple, raw_word_features


_LIT_RUN = re.compile(r"[A-Za-z0-9_./:,+@%^=*?\[\]{}~-]+")

_SQ = re.compile(r"'([^'\n]*)'")

_SQ_ACTIVE = re.compile(r"[\"$`\\]|[<>]\(")

_DQ_RUN = re.compile(r'[^"$`\\!\n\']+')

_DQ_RUN_FIRST = re.compile(r'[^"$`\\!\n]+')

_PARAM = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")

_REDIR = re.compile(r"[0-9]*(<<<|>>|>&|<&|>|<)")

_DUP_FD = re.compile(r"[0-9]+")

_TILDE_WORD = re.compile(r"~[A-Za-z0-9_.-]*(?:/[A-Za-z0-9_./:,+@%^=*?\[\]{}~-]*)?")

_FAST_REFUSE = re.compile(r"[\x00-\x08\n-\x1f\x7f]")

_FAST_MAX_SUBST = 4

class _FastLexer:
    """A lexer for the common, provably simple subset of shell lines (see
    :func:`fast_parse`). It raises :class:`NotSimple` on anything else.

    ``subst``: how many ``$(..)``/``<(..)`` enclose the current position (bashlex
    parses their insides separately, with quirks of its own); ``nested``: how many
    substitutions and subshells do (there an unquoted ``)`` ends a word).
    """

    __slots__ = ("s", "n", "i", "commands", "subst", "nested")

    def __init__(self, s: str):
        self.s = s
        self.n = len(s)
        self.i = 0
        self.commands: list[Simple] = []
        self.subst = 0
        self.nested = 0

    def blanks(self) -> None:
        s, n, i = self.s, self.n, self.i
        while i < n and s[i] in " \t":
            i += 1
        self.i = i

    def ends_word(self, i: int) -> bool:
        if i >= self.n:
            return True
        c = self.s[i]
        if c in "<>":
            return not self.s.startswith("(", i + 1)  # x<(..) is one word for bashlex
        return c in " \t|;&" or (c == ")" and self.nested > 0)

    def commands_list(self, close: str) -> None:
        """Commands joined by ``|``, ``||``, ``&&``, ``;`` up to ``close``, left unconsumed."""
        s, n = self.s, self.n
        before_op = ""       # the operator before this command; "alone": the one before stood alone
        prev_alone = False
        while True:
            self.blanks()
            simple = not (self.i < n and (s[self.i] == "(" or (s.startswith("{", self.i)
                                                               and s[self.i + 1:self.i + 2] in (" ", "\t"))))
            before = len(self.commands)
            self.command()
            self.blanks()
            i = self.i
            after_op = s[i:i + 2] if s.startswith(("&&", "||"), i) else s[i:i + 1]
            alone = simple and before_op != "|" and after_op != "|"     # its Simple is the last one appended
            if alone and prev_alone and before_op == "&&" and len(self.commands) == before + 1:   # Simple.gated
                self.commands[-1] = replace(self.commands[-1], gated=True)
            prev_alone, before_op = alone, after_op
            if i >= n:
                if close:
                    raise NotSimple
                return
            c = s[i]
            if c == ")" and close == ")":
                return
            if s.startswith(("&&", "||"), i) and not self.subst:  # bashlex fails on them inside $(..)
                self.i = i + 2
            elif c in "|;":
                self.i = i + 1
                if c == ";" and close == "}":
                    self.blanks()
                    if s.startswith("}", self.i):
                        return
            else:
                raise NotSimple

    def command(self) -> None:
        s, n = self.s, self.n
        self.blanks()
        i = self.i
        if i < n and (s[i] == "(" or (s.startswith("{", i) and s[i + 1:i + 2] in (" ", "\t"))):
            self.compound(s[i])
            return
        assigns: list[Word] = []
        words: list[Word] = []
        redirects: list[Redirect] = []
        while True:
            self.blanks()
            i = self.i
            if i >= n or s[i] in "|;&)":
                break
            m = _REDIR.match(s, i)
            if m is not None and not (m.start(1) == i and s.startswith(("<(", ">("), i)):
                if not words:
                    raise NotSimple  # a redirection before the command word: bashlex
                redirects.append(self.redirect(m))
                continue
            w = self.word()
            raw = s[i:self.i]
            if not words:
                if ASSIGNMENT.match(raw):
                    assigns.append(w)
                    continue
                if w.text in RESERVED or raw[0] in "<>":
                    raise NotSimple  # reserved word or process substitution as the command
            words.append(w)
        if not words and not assigns:
            raise NotSimple
        self.commands.append(Simple(tuple(assigns), tuple(words), tuple(redirects)))

    def compound(self, opener: str) -> None:
        """``( list )`` or ``{ list; }``, then redirections (bashlex: a holder command)."""
        s = self.s
        if self.subst or s.startswith("((", self.i):
            raise NotSimple  # $( (..) ) and (( )) are arithmetic to bashlex
        self.i += 1
        self.blanks()
        if self.i < self.n and s[self.i] in "({":
            raise NotSimple  # bashlex's walker takes "( (" for arithmetic
        if opener == "(":
            self.nested += 1
            self.commands_list(")")
            self.nested -= 1
        else:
            self.commands_list("}")
        self.i += 1  # the closing ) or }
        # what may follow: ")" is a metacharacter, "}" a reserved word ("(ls)x", "{ ls; }2>x": bashlex decides)
        follow = (" \t|;&<>)" if self.nested else " \t|;&<>") if opener == "(" else " \t|;&"
        if self.i < self.n and s[self.i] not in follow:
            raise NotSimple
        redirects: list[Redirect] = []
        while True:
            self.blanks()
            i = self.i
            if i >= self.n or s[i] in "|;&)":
                break
            m = _REDIR.match(s, i)
            if m is None or (m.start(1) == i and s.startswith(("<(", ">("), i)):
                raise NotSimple  # a word after ) or }
            redirects.append(self.redirect(m))
        if redirects:
            self.commands.append(Simple((), (), tuple(redirects), holder=True))

    def redirect(self, m: re.Match[str]) -> Redirect:
        s, op, j = self.s, m.group(1), m.end()
        if j < self.n and s[j] in "<>&|(":
            raise NotSimple  # here-documents, <>, >|, &>, process substitution as target...
        if op in (">&", "<&"):
            d = _DUP_FD.match(s, j)
            if d is not None and self.ends_word(d.end()) and not s.startswith(("<", ">"), d.end()):
                self.i = d.end()
                return Redirect(op, None)  # >&2: a file descriptor
            self.i = j
            self.blanks()
            lit = _LIT_RUN.match(s, self.i)
            if lit is None or s[self.i] == "-" or not self.ends_word(lit.end()):
                raise NotSimple  # >&- or an unusual target
            w = self.word()
            return Redirect(op, None if w.text.isdigit() else w)
        self.i = j
        self.blanks()
        if self.ends_word(self.i):
            raise NotSimple
        return Redirect(op, self.word())

    def word(self) -> Word:
        s, n = self.s, self.n
        start = i = self.i
        text: list[str] = []
        params: list[str] = []
        dynamic = tilde = False
        if s.startswith(("<(", ">("), i):  # process substitution: a word of its own
            i = self.substitution(i + 2)
            text.append(s[start:i])
            dynamic = True
        elif s[i] == "~":
            m = _TILDE_WORD.match(s, i)
            i = m.end()  # type: ignore[union-attr]
            text.append(s[start:i])
            tilde = True
        else:
            # bashlex's quote removal keeps the quotes of '..' in a word that
            # starts with ", and reads ' inside a later ".." as a quote: both refused
            dq_first = s[i] == '"'
            dq_run = _DQ_RUN_FIRST if dq_first else _DQ_RUN
            while i < n:
                c = s[i]
                if c == "'":
                    m = _SQ.match(s, i)
                    if m is None or dq_first or (self.subst and ("(" in m.group(1) or ")" in m.group(1))):
                        raise NotSimple
                    if not (i == start and self.ends_word(m.end())) and _SQ_ACTIVE.search(m.group(1)):
                        raise NotSimple  # bashlex reads a partly quoted word's '..' as if unquoted
                    text.append(m.group(1))
                    i = m.end()
                elif c == '"':
                    i += 1
                    while True:
                        if i >= n:
                            raise NotSimple
                        c = s[i]
                        if c == '"':
                            i += 1
                            break
                        if c == "$":
                            i = self.dollar(i, text, params)
                            dynamic = True
                            continue
                        m = dq_run.match(s, i)
                        if m is None or "<(" in m.group() or ">(" in m.group() \
                                or (self.subst and ("(" in m.group() or ")" in m.group())):
                            raise NotSimple
                        text.append(m.group())
                        i = m.end()
                elif c == "$":
                    i = self.dollar(i, text, params)
                    dynamic = True
                elif c == "\\":
                    if self.subst or i + 1 >= n or not " " <= s[i + 1] <= "~":
                        raise NotSimple
                    text.append(s[i + 1])
                    i += 2
                else:
                    m = _LIT_RUN.match(s, i)
                    if m is None:
                        break
                    text.append(m.group())
                    i = m.end()
            if s[start] == "'" and s[i - 1] == "'" and _SQ.match(s, start).end() != i:  # type: ignore[union-attr]
                raise NotSimple  # bashlex strips only the outer quotes of '..'..'..'
        raw = s[start:i]
        if i == start or not self.ends_word(i) or raw in ("{", "}") \
                or (i < n and s[i] in "<>" and (raw.isdigit() or (raw[0] == "{" and raw[-1] == "}"))):
            # bashlex takes a word after { or } for a reserved word; N> and {fd}> are redirections
            raise NotSimple
        self.i = i
        glob, brace, ansi = raw_word_features(raw)
        return Word("".join(text), dynamic or ansi, glob, tilde, brace, ansi, tuple(params))

    def dollar(self, i: int, text: list[str], params: list[str]) -> int:
        s = self.s
        if s.startswith("$(", i):
            if s.startswith("$((", i):
                raise NotSimple  # arithmetic
            j = self.substitution(i + 2)
            text.append(s[i:j])
            return j
        m = _PARAM.match(s, i)
        if m is None:
            raise NotSimple  # $1, $?, ${x:-y}, $'..', a lone $...
        params.append(m.group(1) or m.group(2))
        text.append(m.group())
        return m.end()

    def substitution(self, i: int) -> int:
        """Parse the commands of ``$(..)``/``<(..)``/``>(..)`` from ``i``; returns the index after ``)``."""
        if self.subst >= _FAST_MAX_SUBST:
            raise NotSimple
        self.i = i
        self.subst += 1
        self.nested += 1
        self.commands_list(")")
        self.subst -= 1
        self.nested -= 1
        return self.i + 1  # commands_list stopped on the closing ")"

def fast_parse(command: str) -> Parsed | None:
    """Parse ``command`` without bashlex when it is in the simple subset, else None.

    The subset: words of ``[A-Za-z0-9_./:,+@%^=*?[]{}~-]`` characters, ``\\c``
    escapes, ``'single'`` and ``"double"`` quotes (no backslash, backtick or
    ``!`` inside), ``$NAME``/``${NAME}``, ``$(..)``, ``<(..)``/``>(..)`` whose
    insides are in the subset again; a leading ``~`` (tilde word); leading
    ``NAME=value`` assignments; ``( list )`` and ``{ list; }``; commands joined by
    ``|``, ``||``, ``&&``, ``;``; redirections ``[n]>``, ``>>``, ``<``, ``<<<`` to a
    word and ``[n]>&m``/``<&m``/``>& word``. The command word is neither a reserved
    word nor a process substitution. No newlines, no control characters, and
    bashlex's own quirks (its quote removal, ``&&`` inside ``$(..)``, reserved
    words after ``{``/``}``) are left to bashlex. Tests check the result equals
    the bashlex path's on the corpus and on generated lines.
    """
    if not command or _FAST_REFUSE.search(command):
        return None
    lex = _FastLexer(command)
    try:
        lex.commands_list("")
    except (NotSimple, RecursionError):
        return None
    commands = tuple(lex.commands)
    plain = None
    if len(commands) == 1:
        c = commands[0]
        if not c.assigns and not c.redirects and c.words and not c.holder and c.words[0].text != "cd" \
                and not any(x.dynamic or x.brace for x in c.words):
            plain = c.words
    return Parsed(commands, (), plain)
