"""Interpreters: inline code and code read from stdin are refused; a script file or module runs (in the sandbox)."""

from __future__ import annotations

from ..policy import Decision, compile_globs
from .ir import JudgeContext, Word, verdict


INTERPRETER_NAME = compile_globs(
    "sh bash dash zsh ksh mksh pdksh yash posh ash csh tcsh fish rbash elvish nu xonsh python python[0-9]* "
    "pypy pypy[0-9]* perl perl[0-9]* ruby ruby[0-9]* irb node nodejs deno bun php php[0-9]* lua lua[0-9]* "
    "luajit tclsh tclsh* wish wish* expect R Rscript julia pwsh powershell osascript jshell groovy groovysh "
    "scala kotlin kotlinc guile racket sbcl clisp jrunscript rhino ghci runghc runhaskell erl escript elixir "
    "iex swipl ocaml gdb sqlite3 vim vi nvim ex ed emacs ipython ipython3 ts-node tsx dc m4 bpython "
    "ptpython jupyter-console".split())

_INLINE_FLAGS = frozenset("ceEprsix")  # short options that make an interpreter run inline/stdin code

_SAFE_LONG = frozenset({"--version", "--help", "--norc", "--noprofile", "--login", "--posix", "--restricted"})

VERSION_ONLY_ARGS = frozenset({"--version", "-V", "-VV", "--help", "-h", "-v"})

def judge_interpreter(ctx: JudgeContext, program: str, words: tuple[Word, ...]) -> Decision | None:
    """An interpreter command (``words``: program and arguments): deny inline code (``-c``, ``-e``)
    and stdin-fed runs without a script file; None when it runs a script file or module."""
    args = words[1:]
    if args and all(w.text in VERSION_ONLY_ARGS for w in args):
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
                return verdict("deny", "shell.interpreter-inline-code", f"{program} {a[:30]}: option not understood")
            i += 1
            continue
        if a.startswith("-") and a != "-":
            if _INLINE_FLAGS & set(a[1:]):
                return verdict("deny", "shell.interpreter-inline-code", f"{program} {a}: runs inline code or reads stdin")
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
        return verdict("deny", "shell.interpreter-stdin", f"{program} without a script file reads code from stdin")
    if args[i].dynamic:
        return verdict("deny", "shell.interpreter-stdin", f"{program} script is computed at run time")
    return None
