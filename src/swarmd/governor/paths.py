"""Path resolution and judging for ``read_file``, ``write_file`` and shell operands.

Order of checks for a path (first hit decides):

1. ``files.bad-path``: empty, NUL byte, or not resolvable -> deny.
2. ``files.secret``: the lexical *or* the real (symlink-resolved) path matches a
   built-in secret glob (:data:`BUILTIN_SECRETS`) or ``files.secrets`` -> deny.
3. Outside the workspace (after ``realpath``: symlinks, ``..``, ``~``,
   ``/proc/self/root``, duplicate slashes): reads allowed only when listed in
   ``files.read_outside_workspace`` (rule ``files.read_outside_workspace``),
   writes only when listed in ``files.write_outside_workspace``; else deny
   (``files.outside-workspace``). In an agent's copy the real workspace's path is the copy's.
4. Inside: policy rules for the tool (``path`` globs relative to the workspace or
   absolute); deny wins over ask over allow; no rule -> ask (``default.read`` /
   ``default.write``).
"""

from __future__ import annotations

import json
import os
import stat
from functools import lru_cache
from typing import Callable, Iterator

from swarmd.errors import SwarmdError

from .policy import Decision, Policy, compile_globs, expand_home, rule_decision

#: Always-denied path globs (lexical and real path are both checked). Policy
#: ``files.secrets`` adds to this list; it cannot remove entries.
BUILTIN_SECRETS: tuple[str, ...] = (
    "~/.ssh", "~/.ssh/**", "~/.aws", "~/.aws/**", "~/.config/gcloud", "~/.config/gcloud/**",
    "~/.azure/**", "~/.kube/**", "~/.docker/config.json", "~/.gnupg", "~/.gnupg/**",
    "~/.netrc", "~/.pgpass", "~/.npmrc", "~/.pypirc", "~/.git-credentials", "~/.config/gh/**",
    "~/.bash_history", "~/.zsh_history", "~/.python_history", "~/.mysql_history", "~/.psql_history",
    "/root/.ssh/**", "/root/.aws/**", "/home/*/.ssh/**", "/home/*/.aws/**",
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers", "/etc/sudoers.d/**",
    "/etc/ssh/ssh_host_*", "/proc/**/environ", "/proc/**/mem", "/proc/kcore", "/proc/**/fd/**",
    "/dev/mem", "/dev/kmem", "/run/secrets/**", "/var/run/secrets/**",
    "**/.env", "**/.env.*", "**/.envrc", "**/id_rsa*", "**/id_dsa*", "**/id_ecdsa*", "**/id_ed25519*",
    "**/.git-credentials", "**/.netrc", "**/*.pem", "**/*.key", "**/*.p12", "**/*.pfx",
    "**/credentials.json", "**/service-account*.json", "**/.aws/credentials", "**/.docker/config.json",
    "**/memory.db", "**/memory.db-*", "**/.npmrc", "**/.pypirc", "**/.pgpass", "**/.s3cfg", "**/.kube/config",
    "**/terraform.tfstate", "**/terraform.tfstate.*", "**/*.ppk", "**/*.jks", "**/*.keystore", "**/.dockercfg",
    "**/.htpasswd", "**/.vault-token", "**/*.kdbx", "**/.boto", "**/.terraformrc",
)
_SECRETS = compile_globs([expand_home(p) for p in BUILTIN_SECRETS], path=True)


class PathProblem(SwarmdError, ValueError):
    """A path that cannot be judged (empty, NUL byte, unresolvable)."""


@lru_cache(maxsize=512)
def workspace_root(workspace: str) -> str:
    """Real path of a workspace directory.

    Raises :class:`PathProblem` unless ``workspace`` is an absolute path to an
    existing directory. Cached (the workspace is not expected to move).
    """
    if not isinstance(workspace, str) or not workspace.startswith("/") or "\0" in workspace:
        raise PathProblem("workspace must be an absolute path")
    real = os.path.realpath(workspace)
    if real == "/":
        raise PathProblem("workspace must not be the filesystem root")
    if not os.path.isdir(real):
        raise PathProblem(f"workspace {workspace!r} is not a directory")
    return real


def resolve(raw: str, cwd: str) -> tuple[str, str]:
    """Resolve ``raw`` against ``cwd``: returns ``(lexical, real)`` absolute paths.

    ``lexical`` has ``~`` expanded and ``..``/``//`` normalised without touching
    the filesystem; ``real`` additionally resolves symlinks (``os.path.realpath``,
    which also turns ``/proc/self/root/x`` into ``/x``). Raises
    :class:`PathProblem` for empty paths or NUL bytes.
    """
    if not raw:
        raise PathProblem("empty path")
    if "\0" in raw:
        raise PathProblem("NUL byte in path")
    if raw == "~" or raw.startswith("~/"):
        raw = os.path.expanduser("~") + raw[1:]
    elif raw.startswith("~"):
        raw = os.path.expanduser(raw)
        if raw.startswith("~"):
            raise PathProblem("unknown user in ~user path")
    joined = raw if raw.startswith("/") else os.path.join(cwd, raw)
    lexical = os.path.normpath(joined)
    if lexical.startswith("//"):
        lexical = "/" + lexical.lstrip("/")
    try:
        real = os.path.realpath(joined)
    except (OSError, ValueError) as e:
        raise PathProblem(f"cannot resolve: {e}") from None
    return lexical, real


def walk(root: str, *, depth: int = 64, limit: int = 50_000,
         descend: "Callable[[os.DirEntry[str]], bool]" = lambda e: True) -> "Iterator[os.DirEntry[str]]":
    """Entries under directory ``root``, breadth first, at most ``depth``
    levels and ``limit`` entries; symbolic links are yielded, never followed;
    a directory is entered only when ``descend(entry)`` is true. Unreadable
    directories are skipped."""
    level, seen = [root], 0
    for _ in range(depth):
        nxt: list[str] = []
        for d in level:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                seen += 1
                if seen > limit:
                    return
                yield e
                if e.is_dir(follow_symlinks=False) and descend(e):
                    nxt.append(e.path)
        if not nxt:
            return
        level = nxt


def inside(real: str, root: str) -> bool:
    """True if ``real`` is ``root`` or below it (both real absolute paths)."""
    return real == root or real.startswith(root + "/")


#: directories where a workspace's own path is never mounted again inside the sandbox
_SYSTEM_DIRS = ("/usr", "/etc", "/proc", "/dev", "/sys", "/bin", "/lib", "/sbin", "/run")


@lru_cache(maxsize=256)
def copy_origin(root: str) -> str | None:
    """The real workspace an agent's copy ``root`` (a real path ``.../tree`` with
    ``base.json`` beside it: :mod:`.workspace`) was made from, or None (not a copy, or a
    real workspace the sandbox cannot show at its own path: nested in the copy or the
    copy in it, or under a system directory). Inside the sandbox the copy is also mounted
    there, and paths under it are judged as the copy's (:func:`in_copy`)."""
    if os.path.basename(root) != "tree":
        return None
    try:
        with open(os.path.join(os.path.dirname(root), "base.json"), encoding="utf-8") as f:
            real = json.load(f).get("real")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(real, str) or not real.startswith("/") or real == "/" or inside(real, root) \
            or inside(root, real) or any(inside(real, d) for d in _SYSTEM_DIRS):
        return None
    return real


def in_copy(raw: str, root: str) -> str:
    """``raw`` with the real workspace's path (:func:`copy_origin` of ``root``) replaced
    by the copy's ``root`` when ``raw`` names it or something under it (lexically: ``..``
    and ``//`` normalised, symlinks not followed), else ``raw`` unchanged. Red team rt-b018:
    ``read_file`` of the workspace's absolute path reads the agent's copy."""
    origin = copy_origin(root)
    if origin is None or not raw.startswith("/"):
        return raw
    lexical = os.path.normpath(raw)
    if lexical.startswith("//"):
        lexical = "/" + lexical.lstrip("/")
    return root + lexical[len(origin):] if inside(lexical, origin) else raw


def is_secret(policy: Policy, *paths: str) -> bool:
    """True if any of ``paths`` (absolute) matches a built-in or policy secret glob."""
    extra = policy.fast.secrets
    return any(_SECRETS.match(p) or (extra is not None and extra.match(p)) for p in paths)


def judge_path(policy: Policy, raw: str, mode: str, root: str, cwd: str | None = None,
               listed_outside: bool = True) -> Decision:
    """Judge access to path ``raw`` (``mode`` ``"read"`` or ``"write"``).

    ``root`` is the workspace real path (see :func:`workspace_root`); relative
    paths are resolved against ``cwd`` (default: ``root``).
    ``listed_outside=False`` ignores ``files.*_outside_workspace`` (used for
    operands of programs like ``mv``/``cp``, which may only touch the workspace).
    Never raises; rules come from the module docstring's order.
    """
    try:
        lexical, real = resolve(in_copy(raw, root) if raw.startswith("/") else raw, cwd or root)
    except PathProblem as e:
        return Decision("deny", "files.bad-path", f"{e}: {raw[:80]!r}")
    if is_secret(policy, lexical, real):
        return Decision("deny", "files.secret", f"{raw!r} is a secrets path (always denied)")
    if not inside(real, root):
        listed = policy.fast.read_outside if mode == "read" else policy.fast.write_outside
        if listed_outside and listed is not None and listed.match(real) and listed.match(lexical):
            return Decision("allow", f"files.{mode}_outside_workspace",
                            f"{real} is listed in files.{mode}_outside_workspace")
        return Decision("deny", "files.outside-workspace",
                        f"{mode} of {raw!r} resolves to {real}, outside the workspace")
    if mode == "write":
        try:
            st = os.lstat(real)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                return Decision("ask", "files.hardlink", f"{raw!r} has other hard links; a write may land elsewhere")
        except OSError:
            pass
    rel = real[len(root) + 1:] if real != root else "."  # = os.path.relpath(real, root): real is below root
    tool = "read_file" if mode == "read" else "write_file"
    matched = [r for r in policy.rules_for(tool) if r.matches_path(real, rel)]
    return rule_decision(matched, Decision("ask", f"default.{mode}", f"no rule covers {mode} of {rel!r}"))
