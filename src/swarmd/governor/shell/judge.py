"""Judging a parsed line: every simple command (program, arguments as paths, redirections, policy rules), line-level intent, and the fail-closed rule when there is no sandbox."""

from __future__ import annotations

import glob as globmod
import os
import re
from functools import lru_cache

from ..paths import PathProblem, in_copy, inside, is_secret, judge_path, resolve, walk
from ..policy import Decision, Policy, rule_decision, strictest
from ..urls import judge_url
from .builtins import (ASSIGNING_BUILTINS, EXEC_WRAPPERS, PRIVESC, SHELL_BUILTINS_DENIED, WRAPPERS, WRAPPER_SKIP,
                       WRAPPER_VALUED_OPTIONS, judge_builtin_assignment, check_test)
from .checks import PROGRAM_CHECKS
from .git import git_rule_args
from .interpreters import INTERPRETER_NAME, VERSION_ONLY_ARGS, judge_interpreter
from .ir import (ASSIGNMENT, CONTROL_CHARACTERS, DANGEROUS_VARIABLE, URL_SCHEME, JudgeContext, Parsed, Simple, Word,
                 verdict)
from .network import NET_CLIENTS, UPLOAD_OPTIONS, UPLOAD_STDIN
from .parse import parse_command
from .text import edits_in_place, follows_links, not_path_indices, secret_filter


_SYSTEM_BIN = frozenset({"/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin", "/usr/local/sbin"})

MAX_GLOB_MATCHES = 500

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

def _judge_url_arg(ctx: JudgeContext, text: str) -> Decision | None:
    if text.lower().startswith("file:"):
        return verdict("deny", "shell.file-url", f"file: URL {text[:80]!r}")
    if not URL_SCHEME.match(text):
        return None
    host = text.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    bare = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if not bare or not (bare[0].isdigit() or host.startswith("[") or bare.lower().startswith("localhost")):
        return None  # a name: the program resolves it; no DNS at decide time
    bracketed = host[:host.find("]") + 1] if host.startswith("[") else bare
    v = judge_url(ctx.policy, "https://" + bracketed + "/")
    return v.decision if v.decision.decision == "deny" else None

def _judge_path_word(ctx: JudgeContext, word: Word, mode: str, listed_outside: bool = True) -> list[Decision]:
    """Judge one word used as a path, against every possible working directory.

    Stops at the first deny (it is then the last item): the strictest-first
    combination reports the first deny, so later findings could not change it.
    """
    if word.dynamic:
        shape = re.sub(r"\$\{?[A-Za-z0-9_$#?!@*-]+\}?", "x1", word.text)
        if shape.startswith("/") and is_secret(ctx.policy, shape):
            return [verdict("deny", "files.secret", f"{word.text[:60]!r} has the shape of a secrets path")]
        return []  # known only at run time: inside the sandbox it can only reach the workspace
    out: list[Decision] = []
    text = word.text
    if "/dev/tcp/" in text or "/dev/udp/" in text:
        return [verdict("deny", "shell.dev-tcp", "bash /dev/tcp or /dev/udp network redirection")]
    u = _judge_url_arg(ctx, text)
    if u is not None:
        return [u]
    if URL_SCHEME.match(text):
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
                    out.append(verdict("deny", "files.bad-path", str(e)))
                    return out
                if not inside(os.path.realpath(_literal_prefix(lexical)), root):
                    # the sandbox expands it, and sees only the workspace and what the policy lists there:
                    # the pattern is judged as written (never expanded on the host, whose names it would reveal)
                    d = judge_path(policy, cand, mode, root, cwd, listed_outside)
                    out.append(d)
                    if d.decision == "deny":
                        return out
                    continue
                matches = globmod.glob(lexical)
                if len(matches) > MAX_GLOB_MATCHES:
                    out.append(verdict("ask", "shell.too-many-matches", f"glob {text!r} matches too many files"))
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

def _literal_prefix(pattern: str) -> str:
    """The directory part of absolute glob ``pattern`` before its first component with a glob character."""
    parts = pattern.split("/")
    k = next(i for i, p in enumerate(parts) if any(c in p for c in "*?["))
    return "/".join(parts[:k]) or "/"

def _program_name(ctx: JudgeContext, w: Word) -> tuple[str, Decision | None]:
    text = w.text
    if w.dynamic or w.glob or w.brace or not text:
        return text, verdict("deny", "shell.dynamic-command", f"command name {text[:40]!r} is not a literal program name")
    if "/" not in text:
        return text, None
    try:
        lexical, real = resolve(text, ctx.cwds[0])
    except PathProblem as e:
        return text, verdict("deny", "files.bad-path", str(e))
    if os.path.dirname(lexical) in _SYSTEM_BIN:
        return os.path.basename(lexical), None
    if real.startswith(ctx.root + "/") and not is_secret(ctx.policy, lexical, real):
        return text, verdict("allow", "shell.workspace-program", f"runs a file from the workspace inside the sandbox: {text!r}")
    return text, verdict("deny", "shell.path-executable", f"runs a program outside the system bin dirs: {text!r}")

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

def _mass_deletion(ctx: JudgeContext, base: str, words: tuple[Word, ...]) -> Decision | None:
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
            return verdict("deny", "shell.mass-deletion", f"rm -r {w.text!r} deletes the whole workspace or its history")
        for cwd in ctx.cwds:
            try:
                if resolve(t, cwd)[1] == ctx.root:
                    return verdict("deny", "shell.mass-deletion", f"rm -r {w.text!r} deletes the whole workspace")
            except PathProblem:
                pass
    return None

def _judge_wrapped(ctx: JudgeContext, base: str, words: tuple[Word, ...], depth: int) -> list[Decision]:
    """A transparent wrapper (``env``, ``xargs``, ``timeout``...): the wrapped
    command is judged like a command of its own."""
    args = [w.text for w in words[1:]]
    if base == "env" and any(a == "-S" or a.startswith(("--split-string", "-S")) for a in args):
        return [verdict("deny", "shell.interpreter-inline-code", "env -S splits a string into a command")]
    valued = WRAPPER_VALUED_OPTIONS.get(base, frozenset())
    k = 1
    while k < len(words):
        t = words[k].text
        if t in valued:
            k += 2
            continue
        if t.startswith("-") or (WRAPPER_SKIP.match(t) and not words[k].dynamic):
            m = ASSIGNMENT.match(t)
            if m and DANGEROUS_VARIABLE.match(t[:m.end()].rstrip("+=")):
                return [verdict("deny", "shell.dangerous-assignment", f"{base} sets {t.split('=')[0]}")]
            k += 1
            continue
        if depth >= 4:
            return [verdict("ask", "shell.wrapper", f"{base}: wrappers nested too deep")]
        inner = _judge_words(ctx, words[k:], depth + 1)
        return [verdict("allow", "shell.wrapper", f"{base} runs a command judged on its own")] + inner
    return [verdict("allow", "shell.wrapper", f"{base} with nothing to run")]

def _judge_find(ctx: JudgeContext, words: tuple[Word, ...], depth: int) -> list[Decision]:
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
                return [verdict("deny", "shell.parse-error", "find -exec without a command")]
            if depth >= 4:
                return [verdict("ask", "shell.wrapper", "find -exec nested too deep")]
            out.extend(_judge_words(ctx, inner, depth + 1))
            k = end + 1
            continue
        if t == "-delete":
            out.append(verdict("ask", "shell.find-delete", "find -delete deletes every match"))
        elif t in ("-fprint", "-fprint0", "-fprintf", "-fls") and k + 1 < len(words):
            out.extend(_judge_path_word(ctx, words[k + 1], "write", listed_outside=False))
        k += 1
    return out

def _judge_words(ctx: JudgeContext, words: tuple[Word, ...], depth: int = 0) -> list[Decision]:
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
            return [verdict("deny", "shell.ansi-quoting", "$'...' / $\"...\" quoting hides the real text")]
        if w.brace:
            return [verdict("deny", "shell.brace-expansion", f"brace expansion in {w.text[:40]!r}")]
        if any("IFS" in p for p in w.params):
            return [verdict("deny", "shell.ifs", "uses $IFS to split words")]
    for w in words[1:]:
        # filename expansion lists directories whatever the program does with the names (echo, basename,
        # a grep pattern, a wrapper's option): every glob is judged as a path read, as the sandbox expands it
        if w.glob and not w.dynamic:
            found = _judge_path_word(ctx, w, "read")
            if found and found[-1].decision == "deny":
                return [found[-1]]
    base = program.rsplit("/", 1)[-1]
    args = [w.text for w in words[1:]]
    if base in SHELL_BUILTINS_DENIED:
        return [verdict("deny", "shell.shell-builtin", f"{base}: evaluates strings or changes the shell itself")]
    if base in ASSIGNING_BUILTINS or (base == "printf" and any(a.startswith("-v") for a in args)):
        d = judge_builtin_assignment(base, words)
        if d is not None:
            return [d]
        if base in ASSIGNING_BUILTINS:
            return [verdict("allow", "shell.assignment", f"{base} sets ordinary shell variables")]
    if base in PRIVESC:
        return [verdict("deny", "shell.privilege-escalation", f"{base}: runs commands with other privileges/root")]
    if base in EXEC_WRAPPERS:
        return [verdict("deny", "shell.wrapper-exec", f"{base} runs commands it builds or hides from the judge")]
    if INTERPRETER_NAME.match(base):
        d = judge_interpreter(ctx, base, words)
        if d is not None and d.decision == "deny":
            return [d]
    if base in WRAPPERS:
        return _judge_wrapped(ctx, base, words, depth)
    if base == "cd":
        return _judge_cd(ctx, words)
    for check in (check_test(args) if base in ("test", "[", "[[") else None, _mass_deletion(ctx, base, words)):
        if check is not None:
            return [check]
    if follows_links(base, args):
        link = _links_out(ctx.root)
        if link is not None:
            return [verdict("deny", "shell.symlink-escape", f"{base} follows symbolic links and {link!r} points out of "
                                                       "the workspace")]
    if base == "find":
        out.extend(_judge_find(ctx, words, depth))
        if any(x.decision == "deny" for x in out):
            return out
    d = secret_filter(base, args)
    if d is not None:
        return [d]
    check = PROGRAM_CHECKS.get(base)
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
        mode = "write" if (writes is not None and writes.match(base)) or edits_in_place(base, args) else "read"
        skip = not_path_indices(base, args)
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
                out.append(verdict("deny", "shell.dev-tcp", "bash /dev/tcp network redirection"))
    if workspace_program:
        return out
    rule_args = git_rule_args(args) if base == "git" else args
    matched = [r for r in policy.rules_for("shell") if r.matches_shell(base, rule_args)]
    # the program's own rule goes first so that it is the one reported when all parts allow
    out.insert(first, rule_decision(matched, verdict("ask", "default.shell", f"no rule covers {base!r}")))
    return out

def _judge_cd(ctx: JudgeContext, words: tuple[Word, ...]) -> list[Decision]:
    if len(words) != 2 or words[1].text == "-" or words[1].dynamic:
        return [verdict("deny", "shell.cd", "cd needs exactly one literal directory (no '-', no home)")]
    out = _judge_path_word(ctx, words[1], "read")
    if any(d.decision != "allow" for d in out):
        return out
    new: list[str] = []
    for cwd in ctx.cwds:
        try:
            r = resolve(in_copy(words[1].text, ctx.root), cwd)[1]
        except PathProblem:
            continue
        if r not in new:
            new.append(r)
    ctx.union.extend(c for c in new if c not in ctx.union)
    ctx.chain = new           # what a command gated on this cd (``cd DIR && ...``) runs in
    return [verdict("allow", "shell.cd", "cd inside allowed directories (later paths are judged from every possible cwd)")]

def _judge_simple(ctx: JudgeContext, s: Simple) -> list[Decision]:
    out: list[Decision] = []
    for w in s.expands:  # a for list: its globs are expanded by the shell (names of what they match)
        if w.glob and not w.dynamic:
            found = _judge_path_word(ctx, w, "read")
            out.extend(found)
            if found and found[-1].decision == "deny":
                return out
    for a in s.assigns:
        name = a.text.split("=", 1)[0].rstrip("+")
        if DANGEROUS_VARIABLE.match(name):
            return [verdict("deny", "shell.dangerous-assignment", f"assignment to {name} changes how commands run")]
        if any("IFS" in p for p in a.params):
            return [verdict("deny", "shell.ifs", "uses $IFS")]
        value = a.text.split("=", 1)[1] if "=" in a.text else ""
        if "[" in value and any(x in value for x in ("$(", "`")):
            return [verdict("deny", "shell.arithmetic-eval", f"value of {name} runs commands when evaluated")]
        out.append(verdict("allow", "shell.assignment", f"variable assignment {name}=..."))
    for r in s.redirects:
        if r.target is None or r.op == "<<<":
            continue
        out.extend(_judge_path_word(ctx, r.target, "read" if r.op in ("<", "<&") else "write"))
    if not s.words:
        if s.redirects and not s.holder:
            out.append(verdict("ask", "shell.redirect-only", "redirection without a command (truncates/creates files)"))
        return out
    return _judge_words(ctx, s.words) + out

def _label(s: Simple) -> str:
    text = (" ".join(w.text for w in s.words) or " ".join(w.text for w in s.assigns)
            or ("for ... in " + " ".join(w.text for w in s.expands) if s.expands else "(redirection)"))
    return text if len(text) <= 60 else text[:57] + "..."

#: read-only listing programs: harmless by construction when every path argument stays in the workspace
HARMLESS = frozenset("ls cat head tail wc grep egrep fgrep sort uniq cut tr diff cmp file stat du df basename dirname "
                     "realpath readlink pwd echo printf true false test [ nl tac rev column comm join paste fold fmt "
                     "expand unexpand md5sum sha1sum sha256sum sha512sum b2sum cksum seq tree date which whoami id "
                     "uname nproc od hexdump strings".split())

#: the HARMLESS programs whose arguments are not judged as paths (text), or test files (``test -e``)
_TEXT_HARMLESS = frozenset("echo printf true false test [ basename dirname seq date which whoami id uname "
                           "nproc".split())

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
            if c.words[0].text in _TEXT_HARMLESS and (t.startswith(("/", "~")) or ".." in t or w.glob):
                return False  # unconfined, a file test or an expansion would look at the host
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
        return verdict("ask", "sandbox.unavailable", "no sandbox on this machine (bubblewrap or user namespaces missing): "
                                                "only read-only listing commands run without approval"), parsed
    return d, parsed

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
        if generated and (INTERPRETER_NAME.match(_base(c)) or c.words[0].text.startswith("./")) and (
                set(ran) & generated or {"./" + g for g in generated} & set(ran)):
            return verdict("deny", "shell.generated-script", f"runs a script written from computed text in the same line "
                                                        f"({_label(c)})")
    nets = [c for c in cmds if _base(c) in NET_CLIENTS]
    if not nets:
        return None
    for c in cmds:
        b = _base(c)
        runs = (INTERPRETER_NAME.match(b) and not all(w.text in VERSION_ONLY_ARGS for w in c.words[1:])) \
            or c.words[0].text.startswith(("./", "/tmp/", "~/")) \
            or (b == "chmod" and any(re.fullmatch(r"[ugoa]*\+[rwX]*x[rwX]*|0*[0-7]?[1357][0-7]{0,2}", w.text)
                                     for w in c.words[1:]))
        if runs:
            return verdict("deny", "shell.download-exec", f"downloads with {_base(nets[0])} and runs code in the same "
                                                     f"line ({_label(c)})")
    for n in nets:
        words = n.words[1:]
        for k, w in enumerate(words):
            nxt = words[k + 1] if k + 1 < len(words) else None
            stdin = UPLOAD_STDIN.match(w.text) or (w.text in UPLOAD_OPTIONS and nxt is not None and (
                nxt.text in ("-", "@-", "/dev/stdin", "@/dev/stdin") or nxt.text.endswith("=@-")))
            computed = (w.text.startswith(UPLOAD_OPTIONS) and w.dynamic) or (
                w.text in UPLOAD_OPTIONS and nxt is not None and nxt.dynamic)
            if (stdin and len(cmds) > 1) or computed:
                return verdict("deny", "shell.exfiltration", f"{_base(n)} uploads data produced by the command line")
    return None

def _judge_line(policy: Policy, command: object, root: str) -> tuple[Decision, Parsed | None]:
    if not isinstance(command, str) or not command.strip():
        return verdict("deny", "shell.empty", "command must be a non-empty string"), None
    if len(command) > policy.shell.max_length:
        return verdict("deny", "shell.too-long", f"command longer than {policy.shell.max_length} characters"), None
    if CONTROL_CHARACTERS.search(command):
        return verdict("deny", "shell.control-characters", "control, zero-width or bidi characters in the command"), None
    parsed = parse_command(command)
    verdicts = list(parsed.issues)
    if any(v.decision == "deny" for v in verdicts):
        return strictest(verdicts, verdicts[0]), parsed
    intent = _line_intent(parsed)
    if intent is not None:
        return intent, parsed
    ctx = JudgeContext(policy, root)
    for s in parsed.commands:
        if not s.gated:
            ctx.chain = None
        ctx.cwds = ctx.chain if ctx.chain is not None else ctx.union
        ds = _judge_simple(ctx, s)
        worst = strictest(ds, verdict("ask", "default.shell", "nothing to judge"))
        verdicts.append(Decision(worst.decision, worst.rule, f"{_label(s)}: {worst.reason}"))
        if worst.decision == "deny":
            break
    if not verdicts:
        return verdict("deny", "shell.empty", "no command found"), parsed
    return strictest(verdicts, verdicts[0]), parsed
