"""git: global options, subcommands and options that run commands, ``git config`` keys that may be set."""

from __future__ import annotations

import re

from ..policy import Decision
from .ir import verdict, gtfobins_deny


_GIT_EXEC_SUBCOMMANDS = frozenset({"difftool", "mergetool", "instaweb", "web--browse", "filter-branch", "daemon",
                                   "credential", "credential-store", "credential-cache", "send-email",
                                   "upload-pack", "receive-pack", "shell", "upload-archive", "fsmonitor--daemon"})

_GIT_DENY_PREFIX = ("--upload-pack", "--receive-pack", "--exec", "--ext-diff", "--open-files-in-pager",
                    "--config-env", "--exec-path", "--template", "--run", "--extcmd", "--tool")

def check_git(args: list[str]) -> Decision | None:
    """git arguments that run commands or read config from elsewhere (``-c``, ``--git-dir``,
    ``ext::``, ``git config`` of command keys...): a deny (``shell.gtfobins``) or ask, else None."""
    for a in args:
        if a.startswith(_GIT_DENY_PREFIX) or "ext::" in a or a.startswith("fd::"):
            return gtfobins_deny(f"git option {a[:40]!r} runs commands")
    sub_i = None
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-c") or a.startswith("--c"):
            return gtfobins_deny("git -c/--config sets configuration (core.pager, core.sshCommand...) that runs commands")
        if a.startswith(("--git-dir", "--work-tree")):
            return gtfobins_deny("git --git-dir/--work-tree points git at another repository and its configuration")
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
        return gtfobins_deny(f"git {sub} runs external commands")
    if sub == "grep" and any(a.startswith("-O") or a.startswith("--open-files") for a in rest):
        return gtfobins_deny("git grep -O opens a pager command")
    if sub == "rebase" and any(a == "-x" or a.startswith("--exec") for a in rest):
        return gtfobins_deny("git rebase --exec runs commands")
    if any(a.startswith(("--output", "-o")) for a in rest) and sub not in ("branch", "tag"):
        return verdict("ask", "shell.writes-file", f"git {sub} --output writes a file")
    if sub in ("submodule", "bisect") and any(a in ("foreach", "run") for a in rest):
        return gtfobins_deny(f"git {sub} foreach/run runs commands")
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
        return gtfobins_deny("git config writing another configuration file")
    keys = [a for a in rest if not a.startswith("-")]
    if keys and keys[0] in ("set", "unset"):
        keys = keys[1:]
    if not keys or _GIT_SAFE_KEYS.match(keys[0].lower()):
        return None
    return gtfobins_deny(f"git config {keys[0][:40]!r}: only user.*, color.* and similar keys may be set "
                 "(others can run commands)")

def git_rule_args(args: list[str]) -> list[str]:
    """``git`` arguments without the global options before the subcommand
    (``-C dir``, ``--no-pager``...), so that policy rules see the subcommand first."""
    k = 0
    while k < len(args) and args[k].startswith("-"):
        k += 2 if args[k] in ("-C", "--namespace", "--super-prefix") else 1
    return args[k:]
