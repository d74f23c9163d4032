"""Shell command lines: parsing (bashlex) and judging every simple command.

Parsing (:func:`parse_command`, cached) turns a command line into a flat tuple of
:class:`Simple` commands — every command of every pipeline, ``;``/``&&``/``||``
chain, subshell, ``{ }`` group, loop body and command/process substitution —
plus structural findings. A line made only of ``[A-Za-z0-9_./:,+@%^=-]`` words
separated by blanks (no quotes, no shell metacharacters, first word not a
reserved word or assignment) is split on blanks without bashlex: for that
alphabet bash's own word splitting is exactly blank splitting, and the tests
check the two agree on the whole corpus.

Bashlex cannot parse some of what bash accepts (quoted here-document
delimiters, ``$((..))``, ``&&`` inside ``$(..)``): :func:`_prepare` rewrites
those without moving any position before bashlex sees the line.

Every command runs inside the bubblewrap sandbox (``sandbox.py``): the
judge's job is intent. It allows ordinary development (builds, tests,
workspace scripts, ``sed -i``, local git, ``find -exec`` and ``xargs`` with
judged commands, loops, here-documents, arithmetic), denies clear attacks even
where the sandbox would contain them (so that the audit log shows them), and
asks for what leaves the workspace. Judging (:func:`judge_command`) gives the
strictest decision over all parts. Built-in rule ids (code, not policy; they
cannot be switched off by a policy):

deny: ``shell.parse-error``, ``shell.unsupported-syntax`` (``(( ))``, ``case``,
``coproc``...), ``shell.control-characters``, ``shell.too-long``, ``shell.empty``,
``shell.function-definition`` (fork bombs), ``shell.dynamic-command``
(variable, substitution, glob or empty word in command position),
``shell.ifs`` (``$IFS``), ``shell.ansi-quoting`` (``$'\\x..'``),
``shell.brace-expansion``, ``shell.heredoc-expansion`` (``$(..)`` in an
unquoted here-document), ``shell.nested-expansion`` (``${x:-$(..)}``,
``${x@P}``), ``shell.indirect-expansion`` (``${!x}``), ``shell.arithmetic-eval``
(subscripts and arithmetic bash evaluates: ``test -v 'a[$(..)]'``,
``$((x))``, ``let``), ``shell.dangerous-assignment`` (``PATH=``,
``printf -v PATH``, ``export LD_PRELOAD=``, ``read CDPATH``...),
``shell.shell-builtin`` (``eval``, ``source``, ``exec``, ``alias``, ``trap``,
``declare -n``...), ``shell.privilege-escalation`` (``sudo``, ``su``, ``doas``,
``chroot``...), ``shell.wrapper-exec`` (``script``, ``parallel``, ``busybox``,
``toybox``, ``watch``, ``strace``...: they run command lines the judge cannot
see), ``shell.interpreter-inline-code`` (``sh -c``, ``python -c``,
``ts-node -e``...), ``shell.interpreter-stdin`` (an interpreter with no script
file: ``base64 -d | sh``), ``shell.gtfobins`` (options/scripts of otherwise
harmless programs that run commands or write elsewhere: ``awk system()``,
``sed e``, ``tar --checkpoint-action``, ``git -c``, ``git --git-dir``,
``git config include.path``, ``rg --pre``, ``chmod u+s``...),
``shell.download-exec``, ``shell.exfiltration``, ``shell.generated-script``
(line-level intent, :func:`_line_intent`), ``shell.mass-deletion``
(``rm -r`` of the workspace, ``*`` or ``.git``), ``shell.network-redirect``
(``curl --resolve``, proxies, ``wget -e``), ``shell.dev-tcp``,
``shell.file-url``, ``url.*`` (address arguments the URL rules refuse),
``shell.path-executable`` (a program outside the system bin dirs).

ask (floor): ``shell.background`` (``&``), ``shell.endless-loop``
(``while true``), ``shell.find-delete``, ``shell.redirect-only``,
``shell.too-many-matches``, ``shell.writes-file``, ``shell.sed-script``,
``shell.awk-program-file``. allow: ``shell.assignment``, ``shell.wrapper``
(transparent wrappers such as ``env``, ``xargs``, ``timeout``: the wrapped
command is judged as a command of its own), ``shell.workspace-program``.

Then per simple command: path operands (``files.*``, see ``paths.py``; words
computed at run time are left to the sandbox), redirect targets (judged as
writes, reads for ``<``) and policy ``rules`` (deny > ask > allow; none
matching -> ``default.shell`` ask). Options are read with per-program tables
(:data:`OPTION_TABLES`: clustered, glued and abbreviated forms) so that a file
is never taken for a pattern.
"""

from __future__ import annotations

import glob as globmod
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import bashlex
import bashlex.errors
import bashlex.subst

from swarmd.errors import SwarmdError

from .paths import PathProblem, is_secret, judge_path, resolve, walk
from .policy import Decision, Policy, compile_globs, rule_decision, strictest
from .urls import judge_url


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


# --------------------------------------------------------------------------- IR


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
    """One simple command: leading assignments, words (argv), redirections."""

    assigns: tuple[Word, ...]
    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...]
    holder: bool = False  # only carries the redirections of a subshell/group


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed command line: every simple command, structural findings, and
    ``plain`` — the words when the whole line is one simple command that can be
    run as an argv list without a shell (else None)."""

    commands: tuple[Simple, ...]
    issues: tuple[Decision, ...]
    plain: tuple[Word, ...] | None


# --------------------------------------------------------------------------- tables

RESERVED = frozenset("if then else elif fi case esac for select while until do done function time coproc in "
                     "{ } [[ ]] !".split())
SHELL_BUILTINS_DENIED = frozenset(
    "eval source . exec alias unalias trap enable builtin fc history coproc bind set unset shopt hash ulimit "
    "umask pushd popd disown complete compgen compopt caller".split())
#: builtins that set variables: allowed unless a target changes how commands run or a subscript is evaluated
ASSIGNING_BUILTINS = frozenset("export declare typeset local readonly read mapfile readarray let".split())
PRIVESC = frozenset("sudo su doas pkexec runuser setpriv capsh chroot nsenter unshare newgrp sg setcap "
                    "sudoedit machinectl".split())
#: transparent wrappers: the wrapped command is judged as a command of its own
WRAPPERS = frozenset("env xargs nice nohup timeout stdbuf time command setsid flock ionice taskset chrt numactl "
                     "prlimit unbuffer xvfb-run catchsegv valgrind nocache".split())
#: option -> takes a value, per wrapper (so that the value is not taken for the wrapped program)
_WRAPPER_VALUED: dict[str, frozenset[str]] = {
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}), "nice": frozenset({"-n", "--adjustment"}),
    "xargs": frozenset({"-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a", "--arg-file", "--delimiter",
                        "--max-args", "--max-procs", "--max-lines"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}), "ionice": frozenset({"-c", "-n", "-p"}), "env": frozenset({"-u", "-C"}),
}
#: wrappers that run command lines they build themselves, or hide the command: never judged, denied
EXEC_WRAPPERS = frozenset("watch strace ltrace parallel script busybox toybox firejail systemd-run cgexec fakeroot "
                          "proot perf torsocks proxychains proxychains4 sshpass expect expect-lite rlwrap setarch "
                          "linux32 linux64 run-parts start-stop-daemon su-exec gosu chpst daemonize".split())
_INTERPRETER_RE = compile_globs(
    "sh bash dash zsh ksh mksh pdksh yash posh ash csh tcsh fish rbash elvish nu xonsh python python[0-9]* "
    "pypy pypy[0-9]* perl perl[0-9]* ruby ruby[0-9]* irb node nodejs deno bun php php[0-9]* lua lua[0-9]* "
    "luajit tclsh tclsh* wish wish* expect R Rscript julia pwsh powershell osascript jshell groovy groovysh "
    "scala kotlin kotlinc guile racket sbcl clisp jrunscript rhino ghci runghc runhaskell erl escript elixir "
    "iex swipl ocaml gdb sqlite3 vim vi nvim ex ed emacs ipython ipython3 ts-node tsx dc m4 bpython "
    "ptpython jupyter-console".split())
_INLINE_FLAGS = frozenset("ceEprsix")  # short options that make an interpreter run inline/stdin code
_SAFE_LONG = frozenset({"--version", "--help", "--norc", "--noprofile", "--login", "--posix", "--restricted"})
_DANGEROUS_VAR = re.compile(
    r"\A(?:PATH|LD_\w*|DYLD_\w*|BASH_ENV|ENV|IFS|PS[0-4]|PROMPT_COMMAND|SHELLOPTS|BASHOPTS|GLOBIGNORE|CDPATH|"
    r"HOME|TMPDIR|SHELL|GIT_\w*|PYTHON\w*|PERL\w*|RUBY\w*|NODE_\w*|LESS\w*|PAGER|MANPAGER|EDITOR|VISUAL|BROWSER|"
    r"SSH_\w*|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|HISTFILE|TERMINFO|LOCPATH|GCONV_PATH|MALLOC_\w*|\w*_PROXY|"
    r"\w*_proxy|BASH_FUNC_\w*|XDG_\w*)\Z")
_ASSIGN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\+?=")
_WRAPPER_SKIP = re.compile(r"\A(?:[0-9.]+[smhd]?|0x[0-9a-fA-F]+|[A-Za-z_][A-Za-z0-9_]*=.*)\Z", re.DOTALL)
_URLISH = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SCAN_NEEDED = re.compile(r"['\"\\*?\[{]")
_SYSTEM_BIN = frozenset({"/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin", "/usr/local/sbin"})
_SETUID_MODE = re.compile(r"\A(?:[ugoa]*[+=][rwxXt]*s.*|0*[2-7][0-7]{3})\Z")
MAX_GLOB_MATCHES = 500


def _d(decision: str, rule: str, reason: str) -> Decision:
    return Decision(decision, rule, reason)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parsing


def _scan_raw(raw: str) -> tuple[bool, bool, bool]:
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
            self.issues.append(_d("deny", "shell.nested-expansion",
                                  f"command substitution inside ${{{value[:40]}}} is not judged"))
        elif value.startswith("!"):
            self.issues.append(_d("deny", "shell.indirect-expansion",
                                  f"indirect expansion ${{{value[:40]}}} (the name is computed at run time)"))
        elif re.search(r"@[PEAKa]", value) and re.search(r"@[PEAKa]\Z", value):
            self.issues.append(_d("deny", "shell.nested-expansion",
                                  f"${{{value[:40]}}}: @P/@E transformations expand prompts and escapes"))
        elif _unsafe_subscript(value):
            self.issues.append(_d("deny", "shell.arithmetic-eval",
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
                self.issues.append(_d("deny", "shell.unsupported-syntax", f"word part {k!r} is not supported"))
        raw = self.src[node.pos[0]:node.pos[1]]
        glob, brace, ansi = _scan_raw(raw)
        if ansi and not dynamic:
            dynamic = True
        return Word(node.word, dynamic, glob, tilde, brace, ansi, tuple(params))

    def redirect(self, node: bashlex.ast.node) -> Redirect:
        op = node.type
        if op in ("<<", "<<-"):
            body = getattr(node, "heredoc", None)
            text = getattr(body, "value", "") if body is not None else ""
            if node.pos[0] not in self.quoted_heredocs and any(x in text for x in ("$(", "`", "${", "$[")):
                self.issues.append(_d("deny", "shell.heredoc-expansion",
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
            for p in node.parts:
                if p.kind == "operator":
                    if p.op == "&":
                        self.issues.append(_d("ask", "shell.background", "background job (&) outlives the judged command"))
                    elif p.op not in (";", "&&", "||", "\n"):
                        self.issues.append(_d("deny", "shell.unsupported-syntax", f"operator {p.op!r}"))
                elif p.kind in ("pipe", "reservedword"):
                    continue
                else:
                    self.node(p)
        elif k == "compound":
            items = node.list
            if len(items) > 1 and items[0].kind == "reservedword" and items[0].word == "(" \
                    and items[1].kind == "compound":
                self.issues.append(_d("deny", "shell.unsupported-syntax", "arithmetic command (( ))"))
            for p in items:
                if p.kind != "reservedword":
                    self.node(p)
            reds = [self.redirect(r) for r in getattr(node, "redirects", [])]
            if reds:
                self.commands.append(Simple((), (), tuple(reds), holder=True))
        elif k in ("for", "while", "until", "if"):
            if k in ("while", "until") and _endless(node, k):
                self.issues.append(_d("ask", "shell.endless-loop", f"{k} loop that never ends on its own"))
            for p in node.parts:
                if p.kind == "word":
                    self.word(p)
                elif p.kind != "reservedword":
                    self.node(p)
        elif k == "function":
            self.issues.append(_d("deny", "shell.function-definition", "shell function definitions (e.g. fork bombs)"))
        elif k in ("reservedword", "operator", "pipe"):
            return
        elif k == "word":
            self.word(node)
        else:
            self.issues.append(_d("deny", "shell.unsupported-syntax", f"{k} is not supported"))


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


_SUBSCRIPT = re.compile(r"\[([^\]]*)\]")


def _unsafe_subscript(text: str) -> bool:
    """True when ``text`` has an array subscript bash would evaluate
    arithmetically with something other than digits, ``@`` or ``*`` in it
    (``a[$(id)]``, ``a[x]`` where x holds such a string)."""
    return any(not re.fullmatch(r"\s*(?:[0-9]+|@|\*)\s*", m.group(1)) for m in _SUBSCRIPT.finditer(text))


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
                return command, frozenset(), _d("deny", "shell.arithmetic-eval",
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


class _NotSimple(SwarmdError):
    """The fast lexer met something it does not handle: bashlex decides."""


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
    :func:`_fast_parse`). It raises :class:`_NotSimple` on anything else.

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
        while True:
            self.command()
            self.blanks()
            i = self.i
            if i >= n:
                if close:
                    raise _NotSimple
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
                raise _NotSimple

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
                    raise _NotSimple  # a redirection before the command word: bashlex
                redirects.append(self.redirect(m))
                continue
            w = self.word()
            raw = s[i:self.i]
            if not words:
                if _ASSIGN.match(raw):
                    assigns.append(w)
                    continue
                if w.text in RESERVED or raw[0] in "<>":
                    raise _NotSimple  # reserved word or process substitution as the command
            words.append(w)
        if not words and not assigns:
            raise _NotSimple
        self.commands.append(Simple(tuple(assigns), tuple(words), tuple(redirects)))

    def compound(self, opener: str) -> None:
        """``( list )`` or ``{ list; }``, then redirections (bashlex: a holder command)."""
        s = self.s
        if self.subst or s.startswith("((", self.i):
            raise _NotSimple  # $( (..) ) and (( )) are arithmetic to bashlex
        self.i += 1
        self.blanks()
        if self.i < self.n and s[self.i] in "({":
            raise _NotSimple  # bashlex's walker takes "( (" for arithmetic
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
            raise _NotSimple
        redirects: list[Redirect] = []
        while True:
            self.blanks()
            i = self.i
            if i >= self.n or s[i] in "|;&)":
                break
            m = _REDIR.match(s, i)
            if m is None or (m.start(1) == i and s.startswith(("<(", ">("), i)):
                raise _NotSimple  # a word after ) or }
            redirects.append(self.redirect(m))
        if redirects:
            self.commands.append(Simple((), (), tuple(redirects), holder=True))

    def redirect(self, m: re.Match[str]) -> Redirect:
        s, op, j = self.s, m.group(1), m.end()
        if j < self.n and s[j] in "<>&|(":
            raise _NotSimple  # here-documents, <>, >|, &>, process substitution as target...
        if op in (">&", "<&"):
            d = _DUP_FD.match(s, j)
            if d is not None and self.ends_word(d.end()) and not s.startswith(("<", ">"), d.end()):
                self.i = d.end()
                return Redirect(op, None)  # >&2: a file descriptor
            self.i = j
            self.blanks()
            lit = _LIT_RUN.match(s, self.i)
            if lit is None or s[self.i] == "-" or not self.ends_word(lit.end()):
                raise _NotSimple  # >&- or an unusual target
            w = self.word()
            return Redirect(op, None if w.text.isdigit() else w)
        self.i = j
        self.blanks()
        if self.ends_word(self.i):
            raise _NotSimple
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
                        raise _NotSimple
                    if not (i == start and self.ends_word(m.end())) and _SQ_ACTIVE.search(m.group(1)):
                        raise _NotSimple  # bashlex reads a partly quoted word's '..' as if unquoted
                    text.append(m.group(1))
                    i = m.end()
                elif c == '"':
                    i += 1
                    while True:
                        if i >= n:
                            raise _NotSimple
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
                            raise _NotSimple
                        text.append(m.group())
                        i = m.end()
                elif c == "$":
                    i = self.dollar(i, text, params)
                    dynamic = True
                elif c == "\\":
                    if self.subst or i + 1 >= n or not " " <= s[i + 1] <= "~":
                        raise _NotSimple
                    text.append(s[i + 1])
                    i += 2
                else:
                    m = _LIT_RUN.match(s, i)
                    if m is None:
                        break
                    text.append(m.group())
                    i = m.end()
            if s[start] == "'" and s[i - 1] == "'" and _SQ.match(s, start).end() != i:  # type: ignore[union-attr]
                raise _NotSimple  # bashlex strips only the outer quotes of '..'..'..'
        raw = s[start:i]
        if i == start or not self.ends_word(i) or raw in ("{", "}") \
                or (i < n and s[i] in "<>" and (raw.isdigit() or (raw[0] == "{" and raw[-1] == "}"))):
            # bashlex takes a word after { or } for a reserved word; N> and {fd}> are redirections
            raise _NotSimple
        self.i = i
        glob, brace, ansi = _scan_raw(raw)
        return Word("".join(text), dynamic or ansi, glob, tilde, brace, ansi, tuple(params))

    def dollar(self, i: int, text: list[str], params: list[str]) -> int:
        s = self.s
        if s.startswith("$(", i):
            if s.startswith("$((", i):
                raise _NotSimple  # arithmetic
            j = self.substitution(i + 2)
            text.append(s[i:j])
            return j
        m = _PARAM.match(s, i)
        if m is None:
            raise _NotSimple  # $1, $?, ${x:-y}, $'..', a lone $...
        params.append(m.group(1) or m.group(2))
        text.append(m.group())
        return m.end()

    def substitution(self, i: int) -> int:
        """Parse the commands of ``$(..)``/``<(..)``/``>(..)`` from ``i``; returns the index after ``)``."""
        if self.subst >= _FAST_MAX_SUBST:
            raise _NotSimple
        self.i = i
        self.subst += 1
        self.nested += 1
        self.commands_list(")")
        self.subst -= 1
        self.nested -= 1
        return self.i + 1  # commands_list stopped on the closing ")"


def _fast_parse(command: str) -> Parsed | None:
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
    except (_NotSimple, RecursionError):
        return None
    commands = tuple(lex.commands)
    plain = None
    if len(commands) == 1:
        c = commands[0]
        if not c.assigns and not c.redirects and c.words and not c.holder and c.words[0].text != "cd" \
                and not any(x.dynamic or x.brace for x in c.words):
            plain = c.words
    return Parsed(commands, (), plain)


@lru_cache(maxsize=4096)
def parse_command(command: str) -> Parsed:
    """Parse a command line into a :class:`Parsed` (cached, never raises).

    Parse failures and unsupported syntax become deny issues.
    """
    fast = _fast_parse(command)
    if fast is not None:
        return fast
    return _bashlex_parse(command)


def _bashlex_parse(command: str) -> Parsed:
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
        return Parsed((), (_d("deny", "shell.parse-error", f"cannot fully parse the command ({msg})"),), None)
    w = _Walker(text, quoted)
    try:
        for t in trees:
            w.node(t)
    except (AttributeError, TypeError, IndexError, RecursionError) as e:  # unknown AST shape
        return Parsed((), (_d("deny", "shell.parse-error", f"unexpected syntax tree ({type(e).__name__})"),), None)
    plain = None
    if len(trees) == 1 and len(w.commands) == 1 and not w.issues:
        c = w.commands[0]
        if not c.assigns and not c.redirects and c.words and not c.holder and c.words[0].text != "cd" \
                and not any(x.dynamic or x.brace for x in c.words):
            plain = c.words
    return Parsed(tuple(w.commands), tuple(w.issues), plain)


# --------------------------------------------------------------------------- judging


class _Ctx:
    __slots__ = ("policy", "root", "cwds")

    def __init__(self, policy: Policy, root: str):
        self.policy = policy
        self.root = root
        self.cwds = [root]


def _path_candidates(text: str) -> list[str]:
    if text.startswith("-"):
        if "=" in text:
            return [text.split("=", 1)[1]]
        if not text.startswith("--") and len(text) > 2:
            return [text[2:]]
        return []
    out = [text]
    if "=" in text:
        out.append(text.split("=", 1)[1])
    if ":" in text:  # git REV:PATH, scp HOST:PATH
        out.append(text.rsplit(":", 1)[1])
    if text.startswith("@"):
        out.append(text[1:])
    return out


def _judge_url_arg(ctx: _Ctx, text: str) -> Decision | None:
    if text.lower().startswith("file:"):
        return _d("deny", "shell.file-url", f"file: URL {text[:80]!r}")
    if not _URLISH.match(text):
        return None
    host = text.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    bare = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if not bare or not (bare[0].isdigit() or host.startswith("[") or bare.lower().startswith("localhost")):
        return None  # a name: the program resolves it; no DNS at decide time
    bracketed = host[:host.find("]") + 1] if host.startswith("[") else bare
    v = judge_url(ctx.policy, "https://" + bracketed + "/")
    return v.decision if v.decision.decision == "deny" else None


def _judge_path_word(ctx: _Ctx, word: Word, mode: str, listed_outside: bool = True) -> list[Decision]:
    """Judge one word used as a path, against every possible working directory.

    Stops at the first deny (it is then the last item): the strictest-first
    combination reports the first deny, so later findings could not change it.
    """
    if word.dynamic:
        shape = re.sub(r"\$\{?[A-Za-z0-9_$#?!@*-]+\}?", "x1", word.text)
        if shape.startswith("/") and is_secret(ctx.policy, shape):
            return [_d("deny", "files.secret", f"{word.text[:60]!r} has the shape of a secrets path")]
        return []  # known only at run time: inside the sandbox it can only reach the workspace
    out: list[Decision] = []
    text = word.text
    if "/dev/tcp/" in text or "/dev/udp/" in text:
        return [_d("deny", "shell.dev-tcp", "bash /dev/tcp or /dev/udp network redirection")]
    u = _judge_url_arg(ctx, text)
    if u is not None:
        return [u]
    if _URLISH.match(text):
        return []
    policy, root = ctx.policy, ctx.root
    for cand in _path_candidates(text):
        if not cand:
            continue
        for cwd in ctx.cwds:
            if word.glob:
                try:
                    lexical, _ = resolve(cand, cwd)
                except PathProblem as e:
                    out.append(_d("deny", "files.bad-path", str(e)))
                    return out
                matches = globmod.glob(lexical)
                if len(matches) > MAX_GLOB_MATCHES:
                    out.append(_d("ask", "shell.too-many-matches", f"glob {text!r} matches too many files"))
                    continue
                for m in matches:
                    d = judge_path(policy, m, mode, root, cwd, listed_outside)
                    out.append(d)
                    if d.decision == "deny":
                        return out
            d = judge_path(policy, cand, mode, root, cwd, listed_outside)
            out.append(d)
            if d.decision == "deny":
                return out
    return out


_GREP = frozenset({"grep", "egrep", "fgrep", "rg"})
_AWK = frozenset({"awk", "gawk", "mawk", "nawk"})
#: option -> how many following words are values that are not paths
_NOT_PATH_VALUES: dict[str, dict[str, int]] = {
    "grep": {o: 1 for o in ("-e", "--regexp", "-m", "--max-count", "-A", "-B", "-C", "--include", "--exclude",
                            "--exclude-dir", "--color", "--label", "--context", "--after-context",
                            "--before-context")},
    "rg": {o: 1 for o in ("-e", "--regexp", "-g", "--glob", "--iglob", "-t", "--type", "-T", "--type-not", "-m",
                          "--max-count", "-A", "-B", "-C", "-M", "-j", "-d", "--max-depth", "--type-add",
                          "--color", "--colors", "-r", "--replace")},
    "sed": {"-e": 1, "--expression": 1, "-l": 1},
    "awk": {"-F": 1, "-v": 1, "--field-separator": 1, "--assign": 1},
    "jq": {"--arg": 2, "--argjson": 2, "--indent": 1},
    "sort": {"-t": 1, "-k": 1, "-S": 1, "--field-separator": 1, "--key": 1, "--buffer-size": 1},
    "cut": {"-d": 1, "-f": 1, "-c": 1, "-b": 1},
    "head": {"-n": 1, "-c": 1}, "tail": {"-n": 1, "-c": 1},
    "column": {"-s": 1, "-t": 0, "-o": 1}, "paste": {"-d": 1}, "tr": {},
    "git": {"--format": 1, "--pretty": 1, "--author": 1, "--grep": 1, "-e": 1, "--since": 1, "--until": 1},
}
for _n in ("egrep", "fgrep"):
    _NOT_PATH_VALUES[_n] = _NOT_PATH_VALUES["grep"]
for _n in ("gawk", "mawk", "nawk"):
    _NOT_PATH_VALUES[_n] = _NOT_PATH_VALUES["awk"]
_PATTERN_GIVEN_BY = {"grep": ("-e", "--regexp", "-f", "--file"), "rg": ("-e", "--regexp", "-f", "--file"),
                     "sed": ("-e", "--expression", "-f", "--file"), "awk": ("-f", "--file", "-e", "--source"),
                     "jq": ("-f", "--from-file")}
_FIND_PATH_VALUES = ("-newer", "-anewer", "-cnewer", "-samefile", "-files0-from")


@dataclass(frozen=True, slots=True)
class OptionTable:
    """How a program reads its options: ``short``: short options that take a
    value (glued ``-efoo``, separate ``-e foo``, or last of a cluster
    ``-rie foo``); ``long``: long option -> ``"value"``, ``"pattern"``,
    ``"path"`` or ``""`` (no value), matched by unique prefix like getopt
    (``--reg`` is ``--regexp``); ``short_kind``: value kind of each short
    option (default ``"value"``); ``pattern_operand``: the first operand is a
    pattern unless a pattern option was given."""

    short: str
    long: dict[str, str]
    short_kind: dict[str, str]
    pattern_operand: bool = True


_GREP_TABLE = OptionTable(
    short="efmABCdDX", short_kind={"e": "pattern", "f": "path"},
    long={"regexp": "pattern", "file": "path", "max-count": "value", "after-context": "value",
          "before-context": "value", "context": "value", "directories": "value", "devices": "value",
          "include": "value", "exclude": "value", "exclude-from": "path", "exclude-dir": "value", "label": "value",
          "color": "", "colour": "", "binary-files": "value", "group-separator": "value", "recursive": "",
          "dereference-recursive": "", "ignore-case": "", "line-number": "", "files-with-matches": "",
          "count": "", "only-matching": "", "quiet": "", "silent": "", "invert-match": "", "word-regexp": "",
          "line-regexp": "", "extended-regexp": "", "fixed-strings": "", "basic-regexp": "", "perl-regexp": "",
          "no-filename": "", "with-filename": "", "null": "", "text": "", "no-messages": "",
          "files-without-match": "", "byte-offset": "", "initial-tab": "", "null-data": "", "help": "",
          "version": "", "no-ignore-case": "", "line-buffered": "", "max-depth": "value"})
_RG_TABLE = OptionTable(
    short="efgtTmABCMjdrEl", short_kind={"e": "pattern", "f": "path"},
    long={"regexp": "pattern", "file": "path", "glob": "value", "iglob": "value", "type": "value",
          "type-not": "value", "max-count": "value", "after-context": "value", "before-context": "value",
          "context": "value", "max-columns": "value", "threads": "value", "max-depth": "value", "replace": "value",
          "encoding": "value", "type-add": "value", "type-clear": "value", "colors": "value", "color": "value",
          "sort": "value", "sortr": "value", "pre-glob": "value", "ignore-file": "path", "max-filesize": "value",
          "path-separator": "value", "context-separator": "value", "field-match-separator": "value",
          "engine": "value", "dfa-size-limit": "value", "regex-size-limit": "value", "pre": "value",
          "follow": "", "hidden": "", "no-ignore": "", "ignore-case": "", "smart-case": "", "line-number": "",
          "files-with-matches": "", "count": "", "only-matching": "", "quiet": "", "invert-match": "",
          "word-regexp": "", "fixed-strings": "", "files": "", "json": "", "no-heading": "", "heading": "",
          "vimgrep": "", "multiline": "", "pcre2": "", "unrestricted": "", "help": "", "version": ""})
OPTION_TABLES: dict[str, OptionTable] = {"grep": _GREP_TABLE, "egrep": _GREP_TABLE, "fgrep": _GREP_TABLE,
                                         "rg": _RG_TABLE}


def _long_option(table: OptionTable, name: str) -> str | None:
    """The full long option ``name`` abbreviates (unique prefix), or None."""
    if name in table.long:
        return name
    hits = [k for k in table.long if k.startswith(name)]
    return hits[0] if len(hits) == 1 else None


def _secret_filter(base: str, args: list[str]) -> Decision | None:
    """grep/rg ``--include``/``--glob`` patterns that select secret files by name."""
    if base not in OPTION_TABLES:
        return None
    for k, a in enumerate(args):
        opt, eq, val = a.partition("=")
        if not eq and k + 1 < len(args) and opt in ("--include", "-g", "--glob", "--iglob"):
            val = args[k + 1]
        elif not eq and opt.startswith("-g") and len(opt) > 2:
            val = opt[2:]
        elif not (eq and opt in ("--include", "--glob", "--iglob")):
            continue
        name = val.lstrip("!").replace("*", "x").replace("?", "x")
        if name and is_secret(_URL_POLICY, "/w/" + name.lstrip("/")):
            return _d("deny", "files.secret", f"{base} {opt} {val!r} selects secret files")
    return None


def _take_value(skip: set[int], i: int, glued: bool, kind: str) -> int:
    """An option at ``i`` takes a value of ``kind``: glued to it, or the next
    word. Adds the value's index to ``skip`` unless it is a path (paths are
    judged); returns the index of the last word used."""
    if kind != "path":
        skip.add(i if glued else i + 1)
    return i if glued else i + 1


def _table_skip(table: OptionTable, args: list[str]) -> set[int]:
    """Indices of ``args`` that are patterns or option values other than paths
    under ``table`` (getopt rules: clusters, glued values, abbreviations, ``--``).
    An option the table does not know makes its glued text a path candidate
    (judged), never a skipped value."""
    skip: set[int] = set()
    pattern_given = False
    operands: list[int] = []
    i = 0
    end_of_options = False
    while i < len(args):
        a = args[i]
        if end_of_options or a == "-" or not a.startswith("-"):
            operands.append(i)
            i += 1
            continue
        if a == "--":
            end_of_options = True
            i += 1
            continue
        if a.startswith("--"):
            name, eq, _val = a[2:].partition("=")
            full = _long_option(table, name)
            kind = table.long.get(full, "") if full else ""
            if kind:
                pattern_given |= full in ("regexp", "file")
                i = _take_value(skip, i, bool(eq), kind)
            i += 1
            continue
        # a short cluster: the first option taking a value takes the rest of the word, or the next word
        j = 1
        while j < len(a):
            c = a[j]
            if c in table.short:
                pattern_given |= c in "ef"
                i = _take_value(skip, i, j + 1 < len(a), table.short_kind.get(c, "value"))
                break
            j += 1
        i += 1
    if table.pattern_operand and not pattern_given and operands:
        skip.add(operands[0])
    return skip


def _not_path_indices(base: str, args: list[str]) -> set[int]:
    """Indices of arguments that are patterns/option values, never file names
    (grep/sed/awk/jq patterns, find expressions, ``-n 5``...)."""
    skip: set[int] = set()
    table = OPTION_TABLES.get(base)
    if table is not None:
        return _table_skip(table, args)
    if base == "find":
        in_expr = False
        for i, a in enumerate(args):
            if a.startswith(("-", "(", ")", "!")) and a != "-":
                in_expr = True
            if in_expr and not (i > 0 and args[i - 1].startswith(_FIND_PATH_VALUES)):
                skip.add(i)
        return skip
    values = _NOT_PATH_VALUES.get(base)
    if values is None:
        return skip
    family = "grep" if base in _GREP and base != "rg" else ("awk" if base in _AWK else base)
    pattern_given = any(a.split("=", 1)[0] in _PATTERN_GIVEN_BY.get(family, ()) for a in args)
    pattern_first = family in _PATTERN_GIVEN_BY and not pattern_given
    i = 0
    while i < len(args):
        a = args[i]
        opt = a.split("=", 1)[0]
        if opt in values and "=" not in a:
            skip.update(range(i + 1, i + 1 + values[opt]))
            i += 1 + values[opt]
            continue
        if opt in values:
            skip.add(i)
        elif a.startswith("-") and a != "-":
            pass  # other options: judged like any argument (e.g. git --output=FILE)
        elif pattern_first:
            skip.add(i)
            pattern_first = False
        i += 1
    return skip


def _first_operand(args: list[str], valued: frozenset[str] = frozenset()) -> int | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return i + 1 if i + 1 < len(args) else None
        if a in valued:
            i += 2
            continue
        if a.startswith("-") and a != "-":
            i += 1
            continue
        return i
    return None


# ---- GTFOBins-style checks for otherwise harmless programs (program -> check)

_AWK_DENY = re.compile(r"system|getline|\||ENVIRON|PROCINFO|@|/inet|close\s*\(|fflush|ARGV|ARGC")
_GIT_EXEC_SUBCOMMANDS = frozenset({"difftool", "mergetool", "instaweb", "web--browse", "filter-branch", "daemon",
                                   "credential", "credential-store", "credential-cache", "send-email",
                                   "upload-pack", "receive-pack", "shell", "upload-archive", "fsmonitor--daemon"})
_GIT_DENY_PREFIX = ("--upload-pack", "--receive-pack", "--exec", "--ext-diff", "--open-files-in-pager",
                    "--config-env", "--exec-path", "--template", "--run", "--extcmd", "--tool")
_TAR_DENY_PREFIX = ("--checkpoint-action", "--to-command", "--use-compress-program", "--rsh-command",
                    "--info-script", "--new-volume-script", "--rmt-command", "--index-file")


def _gtfo(rule_reason: str) -> Decision:
    return _d("deny", "shell.gtfobins", rule_reason)


def _check_awk(args: list[str]) -> Decision | None:
    for i, a in enumerate(args):
        if a in ("-l", "--load") or a.startswith("--load="):
            return _gtfo("awk -l loads a shared library")
        if a in ("-f", "--file", "-i", "--include", "-E", "--exec") or a.startswith(("--file=", "--include=")):
            return _d("ask", "shell.awk-program-file", "awk program from a file cannot be judged")
        if _AWK_DENY.search(a):
            return _gtfo("awk program runs commands, reads commands' output or the environment")
        if re.search(r"\bprintf?\b[^;}]*>", a) and not (i > 0 and args[i - 1] in ("-F", "-v")):
            return _d("ask", "shell.awk-redirect", "awk program may redirect output to a file")
    return None


_SED_SIMPLE = frozenset("pPdDnNgGhHxlz=qQF{}")


def _sed_script(script: str) -> Decision | None:
    """Judge a sed script: None if every command is known-harmless."""
    i, n = 0, len(script)

    def skip_regex(j: int, delim: str) -> int:
        while j < n and script[j] != delim:
            if script[j] == "\\":
                j += 1
            elif script[j] == "\n":
                return -1
            j += 1
        return j if j < n else -1

    while i < n:
        c = script[i]
        if c in " \t\n;":
            i += 1
            continue
        # addresses
        for _ in range(2):
            if i < n and (script[i].isdigit() or script[i] == "$"):
                while i < n and (script[i].isdigit() or script[i] in "$~+"):
                    i += 1
            elif i < n and script[i] in "/\\":
                delim = "/"
                if script[i] == "\\":
                    if i + 1 >= n:
                        return _d("ask", "shell.sed-script", "sed script not understood")
                    delim = script[i + 1]
                    i += 1
                j = skip_regex(i + 1, delim)
                if j < 0:
                    return _d("ask", "shell.sed-script", "sed script not understood")
                i = j + 1
                while i < n and script[i] in "IM":
                    i += 1
            if i < n and script[i] == ",":
                i += 1
                continue
            break
        while i < n and script[i] in " \t!":
            i += 1
        if i >= n:
            break
        c = script[i]
        if c in "ewWrR":
            return _gtfo(f"sed command {c!r} executes commands or reads/writes files")
        if c in "sy":
            if i + 1 >= n or script[i + 1] in "\\\n":
                return _d("ask", "shell.sed-script", "sed script not understood")
            delim = script[i + 1]
            j = skip_regex(i + 2, delim)
            j = skip_regex(j + 1, delim) if j >= 0 else -1
            if j < 0:
                return _d("ask", "shell.sed-script", "sed script not understood")
            i = j + 1
            if c == "s":
                while i < n and script[i] in "gpiImM0123456789ew":
                    if script[i] in "ew":
                        return _gtfo("sed s///e or s///w executes commands or writes files")
                    i += 1
            continue
        if c in _SED_SIMPLE:
            i += 1
            while i < n and script[i].isdigit():
                i += 1
            continue
        if c in "aic":
            j = script.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c in ":btT#":
            while i < n and script[i] not in ";\n":
                i += 1
            continue
        return _d("ask", "shell.sed-script", f"sed command {c!r} not understood")
    return None


def _check_sed(args: list[str]) -> Decision | None:
    scripts: list[str] = []
    i = 0
    explicit = False
    operand_seen = False
    while i < len(args):
        a = args[i]
        if a in ("-e", "--expression") and i + 1 < len(args):
            scripts.append(args[i + 1])
            explicit = True
            i += 2
            continue
        if a.startswith("--expression="):
            scripts.append(a.split("=", 1)[1])
            explicit = True
        elif a in ("-f", "--file") or a.startswith("--file="):
            return _d("ask", "shell.sed-script", "sed script from a file cannot be judged")
        elif a.startswith("-i") or a.startswith("--in-place") or (a.startswith("-") and not a.startswith("--")
                                                                    and "i" in a[1:]):
            pass  # sed -i: its operands are judged as writes (see _edits_in_place)
        elif a.startswith("-") and a != "-":
            if a not in ("-n", "-E", "-r", "-s", "-u", "-z", "--posix", "--debug", "--sandbox", "--quiet",
                         "--silent", "--regexp-extended", "--null-data", "--separate", "--unbuffered", "-nE",
                         "-En", "-rn", "-nr", "--"):
                return _d("ask", "shell.sed-option", f"sed option {a!r} not understood")
        elif not explicit and not operand_seen:
            scripts.append(a)
            operand_seen = True
        i += 1
    for s in scripts:
        d = _sed_script(s)
        if d is not None:
            return d
    return None


def _check_git(args: list[str]) -> Decision | None:
    for a in args:
        if a.startswith(_GIT_DENY_PREFIX) or "ext::" in a or a.startswith("fd::"):
            return _gtfo(f"git option {a[:40]!r} runs commands")
    sub_i = None
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-c") or a.startswith("--c"):
            return _gtfo("git -c/--config sets configuration (core.pager, core.sshCommand...) that runs commands")
        if a.startswith(("--git-dir", "--work-tree")):
            return _gtfo("git --git-dir/--work-tree points git at another repository and its configuration")
        if a in ("-C", "--namespace"):
            i += 2
            continue
        if not a.startswith("-"):
            sub_i = i
            break
        i += 1
    if sub_i is None:
        return None
    sub, rest = args[sub_i], args[sub_i + 1:]
    if sub in _GIT_EXEC_SUBCOMMANDS:
        return _gtfo(f"git {sub} runs external commands")
    if sub == "grep" and any(a.startswith("-O") or a.startswith("--open-files") for a in rest):
        return _gtfo("git grep -O opens a pager command")
    if sub == "rebase" and any(a == "-x" or a.startswith("--exec") for a in rest):
        return _gtfo("git rebase --exec runs commands")
    if any(a.startswith(("--output", "-o")) for a in rest) and sub not in ("branch", "tag"):
        return _d("ask", "shell.writes-file", f"git {sub} --output writes a file")
    if sub in ("submodule", "bisect") and any(a in ("foreach", "run") for a in rest):
        return _gtfo(f"git {sub} foreach/run runs commands")
    if sub == "config":
        return _check_git_config(rest)
    return None


#: git configuration keys an agent may set (nothing that names a program, a path to include, or a remote)
_GIT_SAFE_KEYS = re.compile(r"\A(?:user\.(?:name|email)|init\.defaultbranch|color\.[a-z.]+|column\.[a-z]+|"
                            r"advice\.[a-z]+|log\.[a-z]+|status\.[a-z]+|pull\.(?:rebase|ff)|rebase\.autosquash|"
                            r"commit\.verbose|merge\.conflictstyle|i18n\.[a-z]+|branch\.[^.]+\.description)\Z")
_GIT_CONFIG_READ = ("--get", "--get-all", "--get-regexp", "--get-urlmatch", "--list", "-l", "--show-origin",
                    "--show-scope", "--name-only", "get", "list")


def _check_git_config(rest: list[str]) -> Decision | None:
    """``git config``: reading forms pass; setting a key passes only for
    :data:`_GIT_SAFE_KEYS` (include.path, gpg.program, pager.*, core.*, alias.*,
    uploadpack.packObjectsHook... run commands)."""
    if any(a in _GIT_CONFIG_READ or a.startswith(("--get", "--list")) for a in rest):
        return None
    if any(a.startswith(("--file", "-f", "--blob", "--global", "--system")) for a in rest):
        return _gtfo("git config writing another configuration file")
    keys = [a for a in rest if not a.startswith("-")]
    if keys and keys[0] in ("set", "unset"):
        keys = keys[1:]
    if not keys or _GIT_SAFE_KEYS.match(keys[0].lower()):
        return None
    return _gtfo(f"git config {keys[0][:40]!r}: only user.*, color.* and similar keys may be set "
                 "(others can run commands)")


def _check_tar(args: list[str]) -> Decision | None:
    for k, a in enumerate(args):
        if a.startswith(_TAR_DENY_PREFIX):
            return _gtfo(f"tar {a.split('=')[0]} runs commands")
        cluster = a[1:] if a.startswith("-") and not a.startswith("--") else (a if k == 0 else "")
        if "I" in cluster or "F" in cluster:
            return _gtfo("tar -I/-F run a compression/volume program")
    return None


def _deny_prefix(prefixes: tuple[str, ...], what: str):  # noqa: ANN202 - small factory
    def check(args: list[str]) -> Decision | None:
        bad = next((a for a in args if a.startswith(prefixes)), None)
        return _gtfo(f"{what} {bad[:40]!r}") if bad else None
    return check


def _writes_via(prefixes: tuple[str, ...], what: str):  # noqa: ANN202 - small factory
    def check(args: list[str]) -> Decision | None:
        bad = next((a for a in args if a.startswith(prefixes)), None)
        return _d("ask", "shell.writes-file", f"{what} ({bad[:40]!r}) writes a file") if bad else None
    return check


def _check_uniq(args: list[str]) -> Decision | None:
    operands = [a for a in args if not a.startswith("-") or a == "-"]
    if len(operands) > 1:
        return _d("ask", "shell.writes-file", "uniq INPUT OUTPUT writes its second operand")
    return None


def _check_date(args: list[str]) -> Decision | None:
    if any(a.startswith(("-s", "--set")) for a in args):
        return _d("deny", "shell.system-change", "date -s sets the system clock")
    return None


def _check_chmod(args: list[str]) -> Decision | None:
    if any(_SETUID_MODE.match(a) for a in args):
        return _gtfo("chmod setting setuid/setgid bits")
    return None


def _chain(*checks):  # noqa: ANN202 - small combinator
    def check(args: list[str]) -> Decision | None:
        return strictest([d for c in checks if (d := c(args)) is not None], None)  # type: ignore[arg-type]
    return check


#: programs that talk to the network by URL
NET_CLIENTS = frozenset({"curl", "wget", "aria2c", "http", "https", "httpie", "xh", "lynx", "links", "w3m", "fetch"})
_NET_REDIRECT = {
    "curl": ("--resolve", "--connect-to", "--dns-servers", "--doh-url", "--unix-socket", "--abstract-unix-socket",
             "--proxy", "--preproxy", "-x", "--socks4", "--socks5", "-K", "--config"),
    "wget": ("-e", "--execute", "-i", "--input-file", "--config", "--use-askpass"),
}
_BARE_HOST = re.compile(r"\A(?:\[[0-9A-Fa-f:.%]+\]|[0-9A-Za-z.]+)(?::[0-9]+)?(?:/.*)?\Z", re.DOTALL)


def _net_check(program: str):  # noqa: ANN202 - small factory
    redirect = _NET_REDIRECT.get(program, ())

    def check(args: list[str]) -> Decision | None:
        """curl/wget: options that reroute connections (``--resolve``, proxies,
        config files, wget ``-e``) deny; addresses given without a scheme
        (``169.254.169.254/x``, ``2130706433``) are judged like URLs."""
        for a in args:
            opt = a.split("=", 1)[0]
            if opt in redirect or (not a.startswith("--") and a[:2] in redirect and len(a) > 2):
                return _d("deny", "shell.network-redirect",
                          f"{program} {opt[:20]}: reroutes the connection or reads options from a file")
        for a in args:
            if a.startswith("-") or _URLISH.match(a) or not _BARE_HOST.match(a):
                continue
            host = a.split("/", 1)[0]
            if host[:1].isdigit() or host.startswith("["):  # names are not resolved while deciding
                v = judge_url(_URL_POLICY, "https://" + host + "/")
                if v.decision.decision == "deny":
                    return v.decision
        return None
    return check


_URL_POLICY = Policy.model_validate({"version": 1})  # built-in URL checks only


_GTFO_CHECKS = {
    "awk": _check_awk, "gawk": _check_awk, "mawk": _check_awk, "nawk": _check_awk,
    "busybox-awk": _check_awk, "sed": _check_sed, "gsed": _check_sed, "git": _check_git, "tar": _check_tar,
    "gtar": _check_tar, "bsdtar": _check_tar,
    "rg": _deny_prefix(("--pre",), "rg option runs a preprocessor command"),
    "zip": _deny_prefix(("-TT", "--unzip-command", "-T"), "zip test option runs a command"),
    "rsync": _deny_prefix(("-e", "--rsh", "--rsync-path"), "rsync option runs a remote shell"),
    "ssh": _deny_prefix(("-o", "-F"), "ssh option can run local commands"),
    "scp": _deny_prefix(("-o", "-S", "-F"), "scp option can run commands"),
    "chmod": _check_chmod, "uniq": _check_uniq, "date": _check_date,
    "jq": _chain(_deny_prefix(("-L", "--library-path", "import ", "include "), "jq module loading reads files"),
                 lambda args: _gtfo("jq env/$ENV reads the environment") if any(
                     re.search(r"\benv\b|\$ENV|\$__loc__|input_filename", a) for a in args) else None),
    "install": _check_chmod,
    "sort": _chain(_deny_prefix(("--compress-program",), "sort option runs a program"),
                   _writes_via(("-o", "--output"), "sort -o")),
    "tree": _writes_via(("-o",), "tree -o"), "file": _writes_via(("-C", "--compile"), "file -C"),
    "split": _deny_prefix(("--filter",), "split --filter runs a shell command"),
    "man": _deny_prefix(("-P", "--pager", "-H", "--html"), "man option runs a pager/browser command"),
    "dpkg": _deny_prefix(("-i", "--install"), "dpkg install runs maintainer scripts"),
    **{n: _net_check(n) for n in ("curl", "wget", "aria2c", "http", "httpie", "xh")},
}


_VERSION_ONLY = frozenset({"--version", "-V", "-VV", "--help", "-h", "-v"})


def _judge_interpreter(ctx: _Ctx, program: str, words: tuple[Word, ...]) -> Decision | None:
    args = words[1:]
    if args and all(w.text in _VERSION_ONLY for w in args):
        return None  # python3 --version: prints and exits
    i = 0
    while i < len(args):
        w = args[i]
        a = w.text
        if a == "--":
            i += 1
            break
        if a.startswith("--"):
            if a not in _SAFE_LONG:
                return _d("deny", "shell.interpreter-inline-code", f"{program} {a[:30]}: option not understood")
            i += 1
            continue
        if a.startswith("-") and a != "-":
            if _INLINE_FLAGS & set(a[1:]):
                return _d("deny", "shell.interpreter-inline-code", f"{program} {a}: runs inline code or reads stdin")
            if a in ("-m", "-W", "-X", "-o", "-O") and program.startswith(("python", "pypy", "sh", "bash", "dash",
                                                                                "zsh", "ksh")):
                i += 2 if a != "-m" else 1
                if a == "-m":
                    return None  # python -m module: a named module, judged by policy rules
                continue
            i += 1
            continue
        if a.startswith("+"):
            i += 1
            continue
        break
    if i >= len(args) or args[i].text in ("-", "/dev/stdin"):
        return _d("deny", "shell.interpreter-stdin", f"{program} without a script file reads code from stdin")
    if args[i].dynamic:
        return _d("deny", "shell.interpreter-stdin", f"{program} script is computed at run time")
    return None


def _program_name(ctx: _Ctx, w: Word) -> tuple[str, Decision | None]:
    text = w.text
    if w.dynamic or w.glob or w.brace or not text:
        return text, _d("deny", "shell.dynamic-command", f"command name {text[:40]!r} is not a literal program name")
    if "/" not in text:
        return text, None
    try:
        lexical, real = resolve(text, ctx.cwds[0])
    except PathProblem as e:
        return text, _d("deny", "files.bad-path", str(e))
    if os.path.dirname(lexical) in _SYSTEM_BIN:
        return os.path.basename(lexical), None
    if real.startswith(ctx.root + "/") and not is_secret(ctx.policy, lexical, real):
        return text, _d("allow", "shell.workspace-program", f"runs a file from the workspace inside the sandbox: {text!r}")
    return text, _d("deny", "shell.path-executable", f"runs a program outside the system bin dirs: {text!r}")


#: options of variable-setting builtins that take a value (that value is not a variable name)
_BUILTIN_VALUED = {"read": ("-d", "-n", "-N", "-p", "-t", "-u", "-i"),
                   "mapfile": ("-d", "-n", "-O", "-s", "-u", "-C", "-c"),
                   "readarray": ("-d", "-n", "-O", "-s", "-u", "-C", "-c")}


def _builtin_assignment(base: str, words: tuple[Word, ...]) -> Decision | None:
    """Variables set by builtins (``export``/``declare``/``local``/``readonly``/
    ``typeset``/``read``/``mapfile``/``readarray``/``printf -v``/``let``/``unset``):
    deny when a target is a variable that changes how commands run, a name
    with an evaluated subscript, or a value that carries an evaluated
    subscript; else None (the assignment is allowed)."""
    args = [w.text for w in words[1:]]
    names: list[str] = []
    values: list[str] = []
    if base == "printf":
        for k, a in enumerate(args):
            if a == "-v" and k + 1 < len(args):
                names.append(args[k + 1])
            elif a.startswith("-v") and len(a) > 2:
                names.append(a[2:])
            elif a == "--" or not a.startswith("-"):
                break
        values = args
    elif base == "let":
        for a in args:
            if any(x in a for x in ("$(", "`", "[")) or _DANGEROUS_VAR.match(re.split(r"[^A-Za-z0-9_]", a)[0] or "-"):
                return _d("deny", "shell.arithmetic-eval", f"let {a[:40]!r}: evaluates subscripts or sets a variable "
                                                           "that changes how commands run")
        return None
    else:
        opts = [a for a in args if a.startswith(("-", "+")) and len(a) > 1]
        if base in ("declare", "typeset", "local", "export", "readonly") and any(
                ("n" in o[1:] or "f" in o[1:]) for o in opts if not o.startswith("--")):
            return _d("deny", "shell.shell-builtin", f"{base} -n/-f: name references and functions")
        for k, a in enumerate(args):
            if a.startswith(("-", "+")) and len(a) > 1:
                continue
            if k > 0 and args[k - 1] in _BUILTIN_VALUED.get(base, ()):
                continue
            name, eq, value = a.partition("=")
            names.append(name.rstrip("+"))
            if eq:
                values.append(value)
    for name in names:
        if _DANGEROUS_VAR.match(name.split("[", 1)[0]):
            return _d("deny", "shell.dangerous-assignment", f"{base} sets {name[:40]}, which changes how commands run")
        if "[" in name and _unsafe_subscript(name):
            return _d("deny", "shell.arithmetic-eval", f"{base} {name[:40]!r}: the subscript is evaluated")
    for v in values:
        if "[" in v and any(x in v for x in ("$(", "`")):
            return _d("deny", "shell.arithmetic-eval", f"{base}: value {v[:40]!r} runs commands when evaluated")
    return None


def _check_test(args: list[str]) -> Decision | None:
    """``test``/``[``/``[[``: ``-v NAME[SUB]`` and numeric comparisons evaluate
    subscripts arithmetically."""
    for k, a in enumerate(args):
        if "[" in a and (k > 0 and args[k - 1] in ("-v", "-eq", "-ne", "-lt", "-le", "-gt", "-ge")
                         or k + 1 < len(args) and args[k + 1] in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge")):
            if _unsafe_subscript(a) or "$(" in a or "`" in a:
                return _d("deny", "shell.arithmetic-eval", f"test operand {a[:40]!r}: the subscript is evaluated")
    return None


#: options that make a program follow symbolic links while it walks directories, per program
_FOLLOW_LINKS = {"grep": ("-R", "--dereference-recursive"), "egrep": ("-R",), "fgrep": ("-R",),
                 "rg": ("-L", "--follow"), "find": ("-L", "-follow", "-H"), "cp": ("-L", "--dereference"),
                 "tar": ("-h", "--dereference"), "du": ("-L", "--dereference"), "zip": ("-L",),
                 "rsync": ("-L", "--copy-links"), "chmod": ("-L",), "chown": ("-L",), "tree": ("-l",)}


def _follows_links(base: str, args: list[str]) -> bool:
    opts = _FOLLOW_LINKS.get(base)
    if not opts:
        return False
    for a in args:
        if a in opts or (a.startswith("-") and not a.startswith("--") and len(a) > 2
                         and any(o[1] in a[1:] for o in opts if len(o) == 2 and o != "-H")):
            return True
    return False


@lru_cache(maxsize=256)
def _links_out(root: str, depth: int = 4, limit: int = 5000) -> str | None:
    """A symbolic link in workspace ``root`` (first ``depth`` levels, at most
    ``limit`` entries) that points outside it, or None. Cached per workspace."""
    for e in walk(root, depth=depth, limit=limit, descend=lambda e: e.name != ".git"):
        if e.is_symlink():
            real = os.path.realpath(e.path)
            if real != root and not real.startswith(root + "/"):
                return e.path[len(root) + 1:]
    return None


def _mass_deletion(ctx: _Ctx, base: str, words: tuple[Word, ...]) -> Decision | None:
    """``rm -r`` of the workspace itself, everything in it (``*``, ``.``) or ``.git``."""
    args = [w.text for w in words[1:]]
    recursive = any(a in ("-r", "-R", "--recursive") or (a.startswith("-") and not a.startswith("--")
                                                          and ("r" in a or "R" in a)) for a in args)
    if base != "rm" or not recursive:
        return None
    for w in words[1:]:
        t = w.text.rstrip("/") or "/"
        if t.startswith("-"):
            continue
        if t in ("*", ".", "..", "./*", ".*", "~", "/") or t.endswith("/.git") or t in (".git", "./.git"):
            return _d("deny", "shell.mass-deletion", f"rm -r {w.text!r} deletes the whole workspace or its history")
        for cwd in ctx.cwds:
            try:
                if resolve(t, cwd)[1] == ctx.root:
                    return _d("deny", "shell.mass-deletion", f"rm -r {w.text!r} deletes the whole workspace")
            except PathProblem:
                pass
    return None


def _judge_wrapped(ctx: _Ctx, base: str, words: tuple[Word, ...], depth: int) -> list[Decision]:
    """A transparent wrapper (``env``, ``xargs``, ``timeout``...): the wrapped
    command is judged like a command of its own."""
    args = [w.text for w in words[1:]]
    if base == "env" and any(a == "-S" or a.startswith(("--split-string", "-S")) for a in args):
        return [_d("deny", "shell.interpreter-inline-code", "env -S splits a string into a command")]
    valued = _WRAPPER_VALUED.get(base, frozenset())
    k = 1
    while k < len(words):
        t = words[k].text
        if t in valued:
            k += 2
            continue
        if t.startswith("-") or (_WRAPPER_SKIP.match(t) and not words[k].dynamic):
            m = _ASSIGN.match(t)
            if m and _DANGEROUS_VAR.match(t[:m.end()].rstrip("+=")):
                return [_d("deny", "shell.dangerous-assignment", f"{base} sets {t.split('=')[0]}")]
            k += 1
            continue
        if depth >= 4:
            return [_d("ask", "shell.wrapper", f"{base}: wrappers nested too deep")]
        inner = _judge_words(ctx, words[k:], depth + 1)
        return [_d("allow", "shell.wrapper", f"{base} runs a command judged on its own")] + inner
    return [_d("allow", "shell.wrapper", f"{base} with nothing to run")]


def _judge_find(ctx: _Ctx, words: tuple[Word, ...], depth: int) -> list[Decision]:
    """``find``: ``-exec``/``-execdir``/``-ok`` commands are judged like commands
    of their own (``{}`` stands for a workspace path); ``-delete`` asks;
    ``-fprint*``/``-fls`` files are judged as writes."""
    out: list[Decision] = []
    k = 1
    while k < len(words):
        t = words[k].text
        if t in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(k + 1, len(words)) if words[j].text in (";", "+")), len(words))
            inner = tuple(Word(".") if w.text == "{}" else w for w in words[k + 1:end])
            if not inner:
                return [_d("deny", "shell.parse-error", "find -exec without a command")]
            if depth >= 4:
                return [_d("ask", "shell.wrapper", "find -exec nested too deep")]
            out.extend(_judge_words(ctx, inner, depth + 1))
            k = end + 1
            continue
        if t == "-delete":
            out.append(_d("ask", "shell.find-delete", "find -delete deletes every match"))
        elif t in ("-fprint", "-fprint0", "-fprintf", "-fls") and k + 1 < len(words):
            out.extend(_judge_path_word(ctx, words[k + 1], "write", listed_outside=False))
        k += 1
    return out


def _git_rule_args(args: list[str]) -> list[str]:
    """``git`` arguments without the global options before the subcommand
    (``-C dir``, ``--no-pager``...), so that policy rules see the subcommand first."""
    k = 0
    while k < len(args) and args[k].startswith("-"):
        k += 2 if args[k] in ("-C", "--namespace", "--super-prefix") else 1
    return args[k:]


def _judge_words(ctx: _Ctx, words: tuple[Word, ...], depth: int = 0) -> list[Decision]:
    """Judge argv words (program + arguments) of one simple command."""
    out: list[Decision] = []
    program, d = _program_name(ctx, words[0])
    if d is not None:
        out.append(d)
        if d.decision == "deny":
            return out
    workspace_program = d is not None and d.rule == "shell.workspace-program"
    first = len(out)
    for w in words:
        if w.ansi:
            return [_d("deny", "shell.ansi-quoting", "$'...' / $\"...\" quoting hides the real text")]
        if w.brace:
            return [_d("deny", "shell.brace-expansion", f"brace expansion in {w.text[:40]!r}")]
        if any("IFS" in p for p in w.params):
            return [_d("deny", "shell.ifs", "uses $IFS to split words")]
    base = program.rsplit("/", 1)[-1]
    args = [w.text for w in words[1:]]
    if base in SHELL_BUILTINS_DENIED:
        return [_d("deny", "shell.shell-builtin", f"{base}: evaluates strings or changes the shell itself")]
    if base in ASSIGNING_BUILTINS or (base == "printf" and any(a.startswith("-v") for a in args)):
        d = _builtin_assignment(base, words)
        if d is not None:
            return [d]
        if base in ASSIGNING_BUILTINS:
            return [_d("allow", "shell.assignment", f"{base} sets ordinary shell variables")]
    if base in PRIVESC:
        return [_d("deny", "shell.privilege-escalation", f"{base}: runs commands with other privileges/root")]
    if base in EXEC_WRAPPERS:
        return [_d("deny", "shell.wrapper-exec", f"{base} runs commands it builds or hides from the judge")]
    if _INTERPRETER_RE.match(base):
        d = _judge_interpreter(ctx, base, words)
        if d is not None and d.decision == "deny":
            return [d]
    if base in WRAPPERS:
        return _judge_wrapped(ctx, base, words, depth)
    if base == "cd":
        return _judge_cd(ctx, words)
    for check in (_check_test(args) if base in ("test", "[", "[[") else None, _mass_deletion(ctx, base, words)):
        if check is not None:
            return [check]
    if _follows_links(base, args):
        link = _links_out(ctx.root)
        if link is not None:
            return [_d("deny", "shell.symlink-escape", f"{base} follows symbolic links and {link!r} points out of "
                                                       "the workspace")]
    if base == "find":
        out.extend(_judge_find(ctx, words, depth))
        if any(x.decision == "deny" for x in out):
            return out
    d = _secret_filter(base, args)
    if d is not None:
        return [d]
    check = _GTFO_CHECKS.get(base)
    if check is not None:
        d = check(args)
        if d is not None:
            out.append(d)
            if d.decision == "deny":
                return out
    policy = ctx.policy
    text_args = policy.fast.text_args
    if text_args is None or not text_args.match(base):
        writes = policy.fast.write_args
        mode = "write" if (writes is not None and writes.match(base)) or _edits_in_place(base, args) else "read"
        skip = _not_path_indices(base, args)
        for i, w in enumerate(words[1:]):
            if i in skip:
                continue
            if mode == "write" and not w.text.startswith("-"):
                found = _judge_path_word(ctx, w, "write", listed_outside=False)
            else:
                found = _judge_path_word(ctx, w, "read")
            out.extend(found)
            if found and found[-1].decision == "deny":
                break  # the first deny is what this command reports (see _judge_path_word)
    else:
        for w in words[1:]:
            if "/dev/tcp/" in w.text or "/dev/udp/" in w.text:
                out.append(_d("deny", "shell.dev-tcp", "bash /dev/tcp network redirection"))
    if workspace_program:
        return out
    rule_args = _git_rule_args(args) if base == "git" else args
    matched = [r for r in policy.rules_for("shell") if r.matches_shell(base, rule_args)]
    # the program's own rule goes first so that it is the one reported when all parts allow
    out.insert(first, rule_decision(matched, _d("ask", "default.shell", f"no rule covers {base!r}")))
    return out


def _edits_in_place(base: str, args: list[str]) -> bool:
    """``sed -i``: its file operands are written."""
    return base in ("sed", "gsed") and any(a.startswith(("-i", "--in-place")) or (
        a.startswith("-") and not a.startswith("--") and "i" in a[1:]) for a in args)


def _judge_cd(ctx: _Ctx, words: tuple[Word, ...]) -> list[Decision]:
    if len(words) != 2 or words[1].text == "-" or words[1].dynamic:
        return [_d("deny", "shell.cd", "cd needs exactly one literal directory (no '-', no home)")]
    out = _judge_path_word(ctx, words[1], "read")
    if any(d.decision != "allow" for d in out):
        return out
    new = []
    for cwd in ctx.cwds:
        try:
            new.append(resolve(words[1].text, cwd)[1])
        except PathProblem:
            pass
    ctx.cwds.extend(c for c in new if c not in ctx.cwds)
    return [_d("allow", "shell.cd", "cd inside allowed directories (later paths are judged from every possible cwd)")]


def _judge_simple(ctx: _Ctx, s: Simple) -> list[Decision]:
    out: list[Decision] = []
    for a in s.assigns:
        name = a.text.split("=", 1)[0].rstrip("+")
        if _DANGEROUS_VAR.match(name):
            return [_d("deny", "shell.dangerous-assignment", f"assignment to {name} changes how commands run")]
        if any("IFS" in p for p in a.params):
            return [_d("deny", "shell.ifs", "uses $IFS")]
        value = a.text.split("=", 1)[1] if "=" in a.text else ""
        if "[" in value and any(x in value for x in ("$(", "`")):
            return [_d("deny", "shell.arithmetic-eval", f"value of {name} runs commands when evaluated")]
        out.append(_d("allow", "shell.assignment", f"variable assignment {name}=..."))
    for r in s.redirects:
        if r.target is None or r.op == "<<<":
            continue
        out.extend(_judge_path_word(ctx, r.target, "read" if r.op in ("<", "<&") else "write"))
    if not s.words:
        if s.redirects and not s.holder:
            out.append(_d("ask", "shell.redirect-only", "redirection without a command (truncates/creates files)"))
        return out
    return _judge_words(ctx, s.words) + out


def _label(s: Simple) -> str:
    text = " ".join(w.text for w in s.words) or " ".join(w.text for w in s.assigns) or "(redirection)"
    return text if len(text) <= 60 else text[:57] + "..."


#: read-only listing programs: harmless by construction when every path argument stays in the workspace
HARMLESS = frozenset("ls cat head tail wc grep egrep fgrep sort uniq cut tr diff cmp file stat du df basename dirname "
                     "realpath readlink pwd echo printf true false test [ nl tac rev column comm join paste fold fmt "
                     "expand unexpand md5sum sha1sum sha256sum sha512sum b2sum cksum seq tree date which whoami id "
                     "uname nproc od hexdump strings".split())


def harmless(parsed: Parsed) -> bool:
    """True when every simple command of ``parsed`` is a :data:`HARMLESS`
    listing program with no redirection other than a read or ``/dev/null``
    (used when no sandbox is available: only such lines run unconfined). Words
    computed at run time and options that follow symbolic links out of the
    workspace (``grep -R``, ``rg -L``, ``find -L``, ``tree -l``...) are not harmless."""
    for c in parsed.commands:
        if c.assigns or not c.words or c.words[0].text not in HARMLESS:
            return False
        for w in c.words[1:]:
            t = w.text
            if w.dynamic or t in ("-L", "-H", "--follow", "--dereference", "--dereference-recursive", "-l") or (
                    t.startswith("-") and not t.startswith("--") and ("R" in t or "L" in t)):
                return False
        for r in c.redirects:
            if r.target is not None and r.op not in ("<", "<&") and r.target.text != "/dev/null":
                return False
    return bool(parsed.commands)


def judge_command(policy: Policy, command: object, root: str, *, confined: bool = True) -> tuple[Decision, Parsed | None]:
    """Judge a shell command line for workspace real path ``root``.

    ``confined``: the command will run in the bubblewrap sandbox; when False
    (no sandbox on this machine) an ``allow`` becomes ``ask``
    (``sandbox.unavailable``) unless the line is :func:`harmless`.
    Returns ``(decision, parsed)``; ``parsed`` is None when the line was rejected
    before parsing. Never raises for hostile strings (see module docstring for
    the rule ids).
    """
    d, parsed = _judge_line(policy, command, root)
    if not confined and d.decision == "allow" and (parsed is None or not harmless(parsed)):
        return _d("ask", "sandbox.unavailable", "no sandbox on this machine (bubblewrap or user namespaces missing): "
                                                "only read-only listing commands run without approval"), parsed
    return d, parsed


_UPLOAD_STDIN = re.compile(r"\A(?:-d|--data(?:-binary|-raw|-urlencode|-ascii)?|-T|--upload-file|-F|--form|"
                           r"--post-file|--body-file|--json)=?(?:@?-|.*=@-|/dev/stdin|@/dev/stdin)\Z")
_UPLOAD_OPTS = ("-d", "--data", "-T", "--upload-file", "-F", "--form", "--post-data", "--post-file", "--body-data",
                "--body-file", "--json")


def _base(c: Simple) -> str:
    return c.words[0].text.rsplit("/", 1)[-1] if c.words else ""


def _line_intent(parsed: Parsed) -> Decision | None:
    """Intent of the whole line, beyond its parts: download and execute
    (a network client and, in the same line, an interpreter, a workspace
    program or ``chmod +x``), and exfiltration (a network client that uploads
    its standard input fed by another command of the line, or uploads data
    computed at run time)."""
    cmds = [c for c in parsed.commands if c.words]
    generated = {r.target.text for c in cmds if any(w.dynamic for w in c.words[1:])
                 for r in c.redirects if r.target is not None and r.op in (">", ">>") and not r.target.dynamic}
    for c in cmds:
        ran = [w.text for w in c.words[:2]]
        if generated and (_INTERPRETER_RE.match(_base(c)) or c.words[0].text.startswith("./")) and (
                set(ran) & generated or {"./" + g for g in generated} & set(ran)):
            return _d("deny", "shell.generated-script", f"runs a script written from computed text in the same line "
                                                        f"({_label(c)})")
    nets = [c for c in cmds if _base(c) in NET_CLIENTS]
    if not nets:
        return None
    for c in cmds:
        b = _base(c)
        runs = (_INTERPRETER_RE.match(b) and not all(w.text in _VERSION_ONLY for w in c.words[1:])) \
            or c.words[0].text.startswith(("./", "/tmp/", "~/")) \
            or (b == "chmod" and any(re.fullmatch(r"[ugoa]*\+[rwX]*x[rwX]*|0*[0-7]?[1357][0-7]{0,2}", w.text)
                                     for w in c.words[1:]))
        if runs:
            return _d("deny", "shell.download-exec", f"downloads with {_base(nets[0])} and runs code in the same "
                                                     f"line ({_label(c)})")
    for n in nets:
        words = n.words[1:]
        for k, w in enumerate(words):
            nxt = words[k + 1] if k + 1 < len(words) else None
            stdin = _UPLOAD_STDIN.match(w.text) or (w.text in _UPLOAD_OPTS and nxt is not None and (
                nxt.text in ("-", "@-", "/dev/stdin", "@/dev/stdin") or nxt.text.endswith("=@-")))
            computed = (w.text.startswith(_UPLOAD_OPTS) and w.dynamic) or (
                w.text in _UPLOAD_OPTS and nxt is not None and nxt.dynamic)
            if (stdin and len(cmds) > 1) or computed:
                return _d("deny", "shell.exfiltration", f"{_base(n)} uploads data produced by the command line")
    return None


def _judge_line(policy: Policy, command: object, root: str) -> tuple[Decision, Parsed | None]:
    if not isinstance(command, str) or not command.strip():
        return _d("deny", "shell.empty", "command must be a non-empty string"), None
    if len(command) > policy.shell.max_length:
        return _d("deny", "shell.too-long", f"command longer than {policy.shell.max_length} characters"), None
    if _CONTROL.search(command):
        return _d("deny", "shell.control-characters", "control, zero-width or bidi characters in the command"), None
    parsed = parse_command(command)
    verdicts = list(parsed.issues)
    if any(v.decision == "deny" for v in verdicts):
        return strictest(verdicts, verdicts[0]), parsed
    intent = _line_intent(parsed)
    if intent is not None:
        return intent, parsed
    ctx = _Ctx(policy, root)
    for s in parsed.commands:
        ds = _judge_simple(ctx, s)
        worst = strictest(ds, _d("ask", "default.shell", "nothing to judge"))
        verdicts.append(Decision(worst.decision, worst.rule, f"{_label(s)}: {worst.reason}"))
        if worst.decision == "deny":
            break
    if not verdicts:
        return _d("deny", "shell.empty", "no command found"), parsed
    return strictest(verdicts, verdicts[0]), parsed
