"""The shell judge's intermediate representation (words, redirections, simple commands, a parsed line) and the small helpers every part shares."""

from __future__ import annotations

import re
from dataclasses import dataclass

from swarmd.errors import SwarmdError

from ..policy import Decision, Policy


@dataclass(frozen=True, slots=True)
class Word:
    """One shell word after quote removal.

    ``dynamic``: contains a parameter, command or process substitution (value
    unknown until run time); ``glob``: unquoted ``*``/``?``/``[``; ``tilde``:
    starts with an unquoted ``~``; ``brace``: unquoted brace expansion;
    ``ansi``: ``$'...'``/``$"..."`` quoting; ``params``: parameter names used.
    """

    text: str
    dynamic: bool = False
    glob: bool = False
    tilde: bool = False
    brace: bool = False
    ansi: bool = False
    params: tuple[str, ...] = ()

@dataclass(frozen=True, slots=True)
class Redirect:
    """A redirection: ``op`` as written (``>``, ``>>``, ``<``, ``<<<``...), ``target`` word or None (fd dup/heredoc)."""

    op: str
    target: Word | None

@dataclass(frozen=True, slots=True)
class Simple:
    """One simple command: leading assignments, words (argv), redirections.
    ``holder``: only carries the redirections of a subshell/group, or the
    ``expands`` of a loop: words the shell expands without running a command
    (a ``for`` list), judged like path arguments when they are globs.
    ``gated``: it runs only when the simple command just before it (in ``commands``)
    succeeded: both stand alone (no pipeline, no compound, no substitution inside this one)
    joined by ``&&``; so after ``cd DIR &&`` it runs in DIR only."""

    assigns: tuple[Word, ...]
    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...]
    holder: bool = False
    expands: tuple[Word, ...] = ()
    gated: bool = False

@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed command line: every simple command, structural findings, and
    ``plain`` — the words when the whole line is one simple command that can be
    run as an argv list without a shell (else None)."""

    commands: tuple[Simple, ...]
    issues: tuple[Decision, ...]
    plain: tuple[Word, ...] | None

RESERVED = frozenset("if then else elif fi case esac for select while until do done function time coproc in "
                     "{ } [[ ]] !".split())

DANGEROUS_VARIABLE = re.compile(
    r"\A(?:PATH|LD_\w*|DYLD_\w*|BASH_ENV|ENV|IFS|PS[0-4]|PROMPT_COMMAND|SHELLOPTS|BASHOPTS|GLOBIGNORE|CDPATH|"
    r"HOME|TMPDIR|SHELL|GIT_\w*|PYTHON\w*|PERL\w*|RUBY\w*|NODE_\w*|LESS\w*|PAGER|MANPAGER|EDITOR|VISUAL|BROWSER|"
    r"SSH_\w*|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|HISTFILE|TERMINFO|LOCPATH|GCONV_PATH|MALLOC_\w*|\w*_PROXY|"
    r"\w*_proxy|BASH_FUNC_\w*|XDG_\w*)\Z")

ASSIGNMENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\+?=")

URL_SCHEME = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_SCAN_NEEDED = re.compile(r"['\"\\*?\[{]")

def verdict(decision: str, rule: str, reason: str) -> Decision:
    """A :class:`Decision` (``decision``: allow, ask or deny; ``rule``: a built-in ``shell.*`` id)."""
    return Decision(decision, rule, reason)  # type: ignore[arg-type]

def raw_word_features(raw: str) -> tuple[bool, bool, bool]:
    """Scan a word as written: (unquoted glob char, brace expansion, $'..'/$".." quoting)."""
    if not _SCAN_NEEDED.search(raw):
        return False, False, False  # none of the characters the loop below reacts to
    glob = brace = ansi = bracket = False
    quote = ""
    opened = commas = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if quote == "'":
            if c == "'":
                quote = ""
        elif quote == '"':
            if c == "\\":
                i += 1
            elif c == '"':
                quote = ""
        elif c == "\\":
            i += 1
        elif c in "'\"":
            if i > 0 and raw[i - 1] == "$":
                ansi = True
            quote = c
        elif c in "*?":
            glob = True
        elif c == "[":
            bracket = True
        elif c == "]" and bracket:
            glob = True
        elif c == "{":
            opened = True
        elif c == "," and opened:
            commas = True
        elif c == "." and opened and raw.startswith("..", i):
            commas = True
        elif c == "}" and opened and commas:
            brace = True
        i += 1
    return glob, brace, ansi

_SUBSCRIPT = re.compile(r"\[([^\]]*)\]")

def unsafe_subscript(text: str) -> bool:
    """True when ``text`` has an array subscript bash would evaluate
    arithmetically with something other than digits, ``@`` or ``*`` in it
    (``a[$(id)]``, ``a[x]`` where x holds such a string)."""
    return any(not re.fullmatch(r"\s*(?:[0-9]+|@|\*)\s*", m.group(1)) for m in _SUBSCRIPT.finditer(text))

class NotSimple(SwarmdError):
    """The fast lexer met something it does not handle: bashlex decides."""

def gtfobins_deny(rule_reason: str) -> Decision:
    """Deny, rule ``shell.gtfobins``: an option or script of an otherwise harmless program that
    runs commands or writes elsewhere (``rule_reason`` says which)."""
    return verdict("deny", "shell.gtfobins", rule_reason)

BUILTIN_URL_POLICY = Policy.model_validate({"version": 1})  # built-in URL checks only


class JudgeContext:
    """What judging one line carries from command to command: the policy, the workspace
    ``root`` (real path) and ``cwds``, the directories the command being judged may run in:
    ``union``, every directory a preceding ``cd`` may have left the shell in, or, for a
    command gated on a ``cd`` (``cd DIR && ...``, :attr:`Simple.gated`), ``chain``: the
    directories that ``cd`` leads to."""

    __slots__ = ("policy", "root", "cwds", "union", "chain")

    def __init__(self, policy: Policy, root: str):
        self.policy = policy
        self.root = root
        self.union = [root]
        self.cwds = self.union
        self.chain: list[str] | None = None
