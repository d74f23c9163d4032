"""Shell builtins and wrappers: builtins that are refused, builtins that set variables (checked for dangerous names and evaluated subscripts), privilege escalation, transparent and command-hiding wrappers, ``test``."""

from __future__ import annotations

import re

from ..policy import Decision
from .ir import Word, DANGEROUS_VARIABLE, verdict, unsafe_subscript


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
WRAPPER_VALUED_OPTIONS: dict[str, frozenset[str]] = {
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}), "nice": frozenset({"-n", "--adjustment"}),
    "xargs": frozenset({"-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a", "--arg-file", "--delimiter",
                        "--max-args", "--max-procs", "--max-lines"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}), "ionice": frozenset({"-c", "-n", "-p"}), "env": frozenset({"-u", "-C"}),
}

#: wrappers that run command lines they build themselves, or hide the command: never judged, denied
EXEC_WRAPPERS = frozenset("watch strace ltrace parallel script busybox toybox firejail systemd-run cgexec fakeroot "
                          "proot perf torsocks proxychains proxychains4 sshpass expect expect-lite rlwrap setarch "
                          "linux32 linux64 run-parts start-stop-daemon su-exec gosu chpst daemonize".split())

WRAPPER_SKIP = re.compile(r"\A(?:[0-9.]+[smhd]?|0x[0-9a-fA-F]+|[A-Za-z_][A-Za-z0-9_]*=.*)\Z", re.DOTALL)

#: options of variable-setting builtins that take a value (that value is not a variable name)
_BUILTIN_VALUED = {"read": ("-d", "-n", "-N", "-p", "-t", "-u", "-i"),
                   "mapfile": ("-d", "-n", "-O", "-s", "-u", "-C", "-c"),
                   "readarray": ("-d", "-n", "-O", "-s", "-u", "-C", "-c")}

def judge_builtin_assignment(base: str, words: tuple[Word, ...]) -> Decision | None:
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
            if any(x in a for x in ("$(", "`", "[")) or DANGEROUS_VARIABLE.match(re.split(r"[^A-Za-z0-9_]", a)[0] or "-"):
                return verdict("deny", "shell.arithmetic-eval", f"let {a[:40]!r}: evaluates subscripts or sets a variable "
                                                           "that changes how commands run")
        return None
    else:
        opts = [a for a in args if a.startswith(("-", "+")) and len(a) > 1]
        if base in ("declare", "typeset", "local", "export", "readonly") and any(
                ("n" in o[1:] or "f" in o[1:]) for o in opts if not o.startswith("--")):
            return verdict("deny", "shell.shell-builtin", f"{base} -n/-f: name references and functions")
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
        if DANGEROUS_VARIABLE.match(name.split("[", 1)[0]):
            return verdict("deny", "shell.dangerous-assignment", f"{base} sets {name[:40]}, which changes how commands run")
        if "[" in name and unsafe_subscript(name):
            return verdict("deny", "shell.arithmetic-eval", f"{base} {name[:40]!r}: the subscript is evaluated")
    for v in values:
        if "[" in v and any(x in v for x in ("$(", "`")):
            return verdict("deny", "shell.arithmetic-eval", f"{base}: value {v[:40]!r} runs commands when evaluated")
    return None

def check_test(args: list[str]) -> Decision | None:
    """``test``/``[``/``[[``: ``-v NAME[SUB]`` and numeric comparisons evaluate
    subscripts arithmetically."""
    for k, a in enumerate(args):
        if "[" in a and (k > 0 and args[k - 1] in ("-v", "-eq", "-ne", "-lt", "-le", "-gt", "-ge")
                         or k + 1 < len(args) and args[k + 1] in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge")):
            if unsafe_subscript(a) or "$(" in a or "`" in a:
                return verdict("deny", "shell.arithmetic-eval", f"test operand {a[:40]!r}: the subscript is evaluated")
    return None
