"""The agent's own copy of a workspace, and the reviewed change set that brings its work back.

:func:`make_copy` gives each objective a copy (``cp -a --reflink=auto`` of every entry but
``.git``, in a private capped tmpfs or on disk; see ``bench/workspace_copy.py``) with secret files
written empty and, for a git repository, a fresh repository with the latest commits, secret
paths left out of all of them (:mod:`.history`), no credentials. Its base manifest (``base.json``: out of the sandbox's sight, beside the
tree's tmpfs, never in space the agent can fill) records what was copied. :func:`change_set` lists
what the agent changed (added, modified, deleted, modes), each judged (:func:`judge`): git
metadata (``.git`` anywhere, gitfiles, git-directory look-alikes, git ``config`` files), devices,
FIFOs, sockets and symlinks leaving the workspace are ``deny`` (never applied); deleting or gutting
files the workspace had, protected paths, conflicts and oversized sets ``ask``; the rest follows the
policy's ``write_file`` rules.
:func:`apply` writes allowed entries through ``O_NOFOLLOW`` directory descriptors, without
setuid/setgid/sticky bits, owned by the real workspace's owner; :func:`commit` commits it. Errors: WorkspaceError.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from loguru import logger

from swarmd.errors import SwarmdError

from .audit import redact
from .paths import is_secret, judge_path
from .history import HistoryError, import_history
from .secrets import scrub_git_config
from .policy import Decision, Policy, compile_globs, strictest
from . import sandbox
from .sandbox import PROTECTED

#: the copy's tree and its base manifest inside an :class:`AgentCopy` directory
TREE, BASE = "tree", "base.json"
#: names that make a directory a git directory (git's ``is_git_directory``: HEAD with objects
#: and refs, or a ``commondir``; ``gitdir`` marks a worktree's admin directory)
GIT_DIR_MARKERS = frozenset({"HEAD", "commondir", "gitdir"})
#: git config sections whose keys run programs or redirect git (a file named ``config``
#: holding one is refused wherever it is)
GIT_CONFIG_SECTIONS = ("core", "include", "includeif", "alias", "filter", "diff", "merge", "credential",
                       "gpg", "sequence", "uploadpack", "receive", "remote", "url", "http", "protocol",
                       "submodule", "pager", "interactive", "web", "browser", "difftool", "mergetool",
                       "extensions", "safe")
#: the identity of the snapshot commit in the copy
SNAPSHOT_ENV = {"GIT_AUTHOR_NAME": "swarmd", "GIT_AUTHOR_EMAIL": "swarmd@localhost",
                "GIT_COMMITTER_NAME": "swarmd", "GIT_COMMITTER_EMAIL": "swarmd@localhost"}
#: git run by swarmd itself (the copy's snapshot, ``ls-files`` in the real workspace): no
#: system or global config, nothing that runs a program
GIT_SAFE = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
            "-c", "protocol.allow=never", "-c", "core.untrackedCache=false", "-c", "diff.external="]
#: workspaces up to this many bytes (allocated blocks) are copied to a private tmpfs (created
#: in a tenth of the time on a busy disk, capped in bytes and inodes: docs/benchmarks.md);
#: larger ones, or without root, go to the data directory's disk
COPY_IN_MEMORY_MAX = 256 << 20
#: characters of unified diff kept per asked change (shown by ``swarmctl show``/``approvals``)
DIFF_CHARS = 4000
_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink"}


class WorkspaceError(SwarmdError, RuntimeError):
    """The agent's copy cannot be made or read (names the path and why)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a change set.

    ``op``: ``add`` | ``modify`` | ``delete`` | ``mode``; ``path``: relative to the
    workspace; ``kind``: ``file`` | ``dir`` | ``symlink`` | ``fifo`` | ``device`` |
    ``socket``; ``decision``: the governor's (``deny`` is never applied, ``ask``
    waits for a person); ``mode``: permission bits to apply (setuid, setgid and
    sticky stripped), ``note``: e.g. ``setuid/setgid bits stripped``.
    """

    op: str
    path: str
    kind: str
    decision: Decision
    mode: int | None = None
    note: str = ""

    def to_json(self) -> dict:
        """``{"op", "path", "kind", "decision", "rule", "reason", "mode", "note"}``."""
        return {"op": self.op, "path": self.path, "kind": self.kind, "decision": self.decision.decision,
                "rule": self.decision.rule, "reason": self.decision.reason,
                "mode": None if self.mode is None else oct(self.mode), "note": self.note}


@dataclass
class ChangeSet:
    """What the agent changed in its copy, judged: ``changes`` in apply order."""

    changes: list[Change] = field(default_factory=list)

    def by(self, decision: str) -> list[Change]:
        """The changes whose decision is ``decision`` (``allow``/``ask``/``deny``)."""
        return [c for c in self.changes if c.decision.decision == decision]

    def to_json(self) -> list[dict]:
        """One dict per change (:meth:`Change.to_json`)."""
        return [c.to_json() for c in self.changes]


@dataclass(frozen=True, slots=True)
class AgentCopy:
    """An objective's copy: ``dir`` holds ``tree/`` (the agent's workspace, the
    only part the sandbox sees; the capped tmpfs when in memory) and ``base.json``
    (outside that tmpfs: the agent cannot fill its space); ``real``: the real workspace."""

    dir: str
    real: str

    @property
    def tree(self) -> str:
        """The agent's workspace (absolute real path)."""
        return os.path.join(self.dir, TREE)

    def exists(self) -> bool:
        """True once :func:`make_copy` finished for this copy."""
        return os.path.isfile(os.path.join(self.dir, BASE))


# --------------------------------------------------------------------------- scanning

def _kind(mode: int) -> str:
    fmt = stat.S_IFMT(mode)
    if fmt in _KINDS:
        return _KINDS[fmt]
    return {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}.get(fmt, "device")


def scan(root: str, *, skip_top_git: bool = True) -> dict[str, os.stat_result]:
    """Every entry under ``root`` (symlinks not followed): relative path -> lstat.
    The top-level ``.git`` and what is under it are left out when ``skip_top_git``."""
    out: dict[str, os.stat_result] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                if skip_top_git and r == ".git":
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                out[r] = st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(r)
    return out


def _lstat(root: str, rel: str) -> os.stat_result | None:
    try:
        return os.lstat(os.path.join(root, rel))
    except OSError:
        return None


def _sig(st: os.stat_result | None) -> list | None:
    """What says an entry of the copy was touched: inode and ctime (the agent cannot set ctime)."""
    return None if st is None else [st.st_mode, st.st_ino, st.st_ctime_ns, st.st_size]


def _real_sig(st: os.stat_result | None) -> list | None:
    return None if st is None else [st.st_mode, st.st_size, st.st_mtime_ns]


# --------------------------------------------------------------------------- the copy

def _git(cwd: str, *args: str, env_home: str, check: bool = True, timeout: float = 120) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": env_home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_TERMINAL_PROMPT": "0", "LANG": "C", **SNAPSHOT_ENV}
    r = subprocess.run(["git", *GIT_SAFE, *args], cwd=cwd, env=env, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise WorkspaceError(f"git {args[0]} in {cwd} failed: {r.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return r.stdout.decode("utf-8", "surrogateescape")


def _is_repo(real: str) -> bool:
    return os.path.lexists(os.path.join(real, ".git"))


def _masks(policy: Policy) -> "tuple":
    return compile_globs(list(policy.sandbox.mask), path=True), compile_globs(list(policy.sandbox.protect), path=True)


def _mount_tmpfs(dest: str, size_bytes: int, inodes: int) -> bool:
    """Mount a private tmpfs of ``size_bytes`` and ``inodes`` on ``dest`` (root only);
    False when it cannot be mounted (then the copy lives on the data directory's disk)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},nr_inodes={inodes},mode=0700",
                        "swarmd-copy", dest], capture_output=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        logger.warning("workspace copy: cannot mount a tmpfs on {} ({}); copying to disk", dest,
                       r.stderr.decode("utf-8", "replace").strip()[:200])
    return r.returncode == 0


def discard(ac: AgentCopy) -> None:
    """Remove an objective's copy (unmounting its tmpfs first). Never raises."""
    for d in (ac.tree, ac.dir):      # the tree's tmpfs (and a whole-directory one of older copies)
        if os.path.ismount(d):
            subprocess.run(["umount", "-l", d], capture_output=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(ac.dir, ignore_errors=True)


def make_copy(real: str, dest: str, policy: Policy, *, in_memory: bool | None = None) -> AgentCopy:
    """Make the agent's copy of workspace ``real`` in directory ``dest`` (created;
    must not exist or be empty). Returns the :class:`AgentCopy`.

    ``dest/tree`` becomes a private tmpfs (root; ``in_memory`` None: when the workspace
    holds at most :data:`COPY_IN_MEMORY_MAX` bytes) sized for the copy plus
    ``sandbox.write_cap_mb`` and ``sandbox.write_cap_inodes``: the agent's
    writable layer is then capped in bytes and inodes by the kernel; otherwise a
    directory on ``dest``'s disk. The base manifest stays in ``dest``, outside that
    tmpfs. Remove it with :func:`discard`.

    Entries named ``.git`` are not copied (anywhere); special files are dropped;
    secret files (built-in list, ``files.secrets``, ``sandbox.mask``) are written
    empty and secret directories emptied, so the copy never holds their bytes. When
    ``real`` is a git repository the copy gets a fresh one: branch of the same
    name, its last ``sandbox.history_commits`` commits with every secret path left
    out of all of them (or one commit of the copied tree: :func:`_snapshot`), remotes
    with credentials removed (:func:`secrets.scrub_git_config`). Raises
    :class:`WorkspaceError` when copying fails.
    """
    real = os.path.realpath(real)
    os.makedirs(dest, mode=0o700, exist_ok=True)
    ac = AgentCopy(os.path.realpath(dest), real)
    real_now = scan(real)
    size = sum(st.st_blocks * 512 for st in real_now.values())
    os.makedirs(ac.tree, mode=0o700, exist_ok=True)
    if in_memory is not False and (in_memory or size <= COPY_IN_MEMORY_MAX) and not os.path.ismount(ac.tree):
        # only the tree is in the capped tmpfs: swarmd's own metadata (base.json) is beside it, so an
        # agent that fills the tmpfs (bytes or inodes) never stops swarmd from recording the change set
        extra = policy.sandbox.write_cap_mb * 1024 * 1024
        _mount_tmpfs(ac.tree, 2 * size + extra + (16 << 20),
                     len(real_now) + 1024 + int(getattr(policy.sandbox, "write_cap_inodes", 100_000)))
    try:
        _fill(ac, real_now, policy)
    except BaseException:
        discard(ac)
        raise
    return ac


def _fill(ac: AgentCopy, real_now: dict[str, os.stat_result], policy: Policy) -> None:
    """The body of :func:`make_copy`: copy, mask, snapshot, hand over, base manifest."""
    real = ac.real
    tree = ac.tree
    os.makedirs(tree, mode=0o755, exist_ok=True)
    os.chmod(tree, stat.S_IMODE(os.stat(real).st_mode) & 0o777)
    names = [n for n in os.listdir(real) if n.lower() != ".git"]
    if names:
        r = subprocess.run(["cp", "-a", "--reflink=auto", "--no-preserve=links", "-t", tree, "--",
                            *(os.path.join(real, n) for n in names)], capture_output=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise WorkspaceError(f"copying {real} to {tree} failed: "
                                 f"{r.stderr.decode('utf-8', 'replace').strip()[:300]}")
    secret = _secret_rel(policy, real)
    masked: list[str] = []
    removed = False
    for rel, st in sorted(scan(tree).items()):
        p = os.path.join(tree, rel)
        if removed and not os.path.lexists(p):
            continue  # under a directory removed below
        if os.path.basename(rel).lower() == ".git":
            (shutil.rmtree if stat.S_ISDIR(st.st_mode) else os.unlink)(p)
            removed = True
            continue
        if _kind(st.st_mode) not in ("file", "dir", "symlink"):
            os.unlink(p)
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        if secret(rel):
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(p)
                os.mkdir(p, 0o700)
                removed = True
            else:
                os.truncate(p, 0)
            masked.append(rel)
    if _is_repo(real):
        _snapshot(ac, policy, masked, secret)
    _give_to_sandbox(tree)
    base = {"real": real, "masked": masked, "made": time.time(), "entries": {}}
    ac_entries = base["entries"]
    now = scan(tree)
    for rel, st in now.items():
        ac_entries[rel] = {"copy": _sig(st), "real": _real_sig(real_now.get(rel)), "orig": True}
    _save_base(ac, base)


def _give_to_sandbox(tree: str) -> None:
    """The copy belongs to the agent: when the worker is root and the sandbox runs as
    a dedicated host uid (``sandbox.HOST_UID``), every entry of the copy (its fresh
    ``.git`` included) is given to that uid, before the base manifest is taken."""
    uid = getattr(sandbox, "HOST_UID", None)
    if uid is None or not getattr(sandbox, "PRIVILEGED", False):
        return
    # -h: a symbolic link itself, never its target; -R with the default -P: links never followed
    r = subprocess.run(["chown", "-R", "-h", "-P", f"{uid}:{uid}", "--", tree], capture_output=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode == 0:
        return
    os.chown(tree, uid, uid)
    for rel in scan(tree, skip_top_git=False):
        os.chown(os.path.join(tree, rel), uid, uid, follow_symlinks=False)


def _snapshot(ac: AgentCopy, policy: Policy, masked: "list[str]", secret: "Callable[[str], bool]") -> None:
    """The copy's fresh repository on the real branch's name: the last
    ``sandbox.history_commits`` commits with every secret path left out
    (:func:`history.import_history`), or, when that is 0 or fails, one commit of the copied
    tree; index = HEAD (the operator's uncommitted changes show as changes), masked files
    ignored (``info/exclude``), scrubbed remotes."""
    home = ac.dir
    head = ""
    try:
        head = _git(ac.real, "symbolic-ref", "-q", "--short", "HEAD", env_home=home, check=False).strip()
        sha = _git(ac.real, "rev-parse", "-q", "--verify", "HEAD", env_home=home, check=False).strip()
        remotes = _git(ac.real, "config", "--get-regexp", r"^remote\..*\.url$", env_home=home, check=False)
    except (OSError, subprocess.SubprocessError):
        sha, remotes = "", ""
    tree = ac.tree
    branch = head or "main"
    _git(tree, "init", "-q", "-b", branch, env_home=home)
    n = int(getattr(policy.sandbox, "history_commits", 0))
    if not (sha and n and _import_history(ac, branch, n, secret)):
        files = [p for p in _git(tree, "ls-files", "-z", "--others", "--exclude-standard", env_home=home).split("\0")
                 if p]
        msg = f"swarmd: snapshot of the workspace{' at ' + sha[:12] if sha else ''} (no history)\n".encode()
        _fast_import(tree, branch, msg, files, home)
    elif masked:    # left out of the history: untracked in the copy, and not worth a line of git status
        with open(os.path.join(tree, ".git", "info", "exclude"), "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write("".join("/" + _glob_literal(m) + "\n" for m in masked))
    _git(tree, "read-tree", "HEAD", env_home=home)
    _git(tree, "update-index", "-q", "--refresh", env_home=home, check=False)
    for line in remotes.splitlines():
        key, _, url = line.partition(" ")
        name = key[len("remote."):-len(".url")]
        if name and url:      # query strings dropped (tokens); user-info removed by scrub_git_config below
            _git(tree, "remote", "add", name, url.split("?", 1)[0] if "://" in url else url, env_home=home,
                 check=False)
    try:
        scrub_git_config(tree)
    except (OSError, subprocess.SubprocessError) as e:
        raise WorkspaceError(f"cannot scrub the copy's git config in {tree}: {e}") from None


def _secret_rel(policy: Policy, real: str):
    """``secret(rel)``: a workspace-relative path (or one of its directories) is secret."""
    mask, _ = _masks(policy)
    memo: dict[str, bool] = {}

    def one(sub: str) -> bool:
        hit = memo.get(sub)
        if hit is None:
            hit = memo[sub] = bool(is_secret(policy, os.path.join(real, sub)) or (mask is not None and mask.match(sub)))
        return hit

    def secret(rel: str) -> bool:
        parts = rel.split("/")
        return one(rel) or any(one("/".join(parts[:k])) for k in range(1, len(parts)))
    return secret


def _import_history(ac: AgentCopy, branch: str, n: int, secret: "Callable[[str], bool]") -> bool:
    """:func:`history.import_history` into the copy; False (logged) when it fails."""
    env = {"PATH": "/usr/bin:/bin", "HOME": ac.dir, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_TERMINAL_PROMPT": "0", "LANG": "C"}
    try:
        import_history(ac.real, ac.tree, branch, n, secret, ["git", *GIT_SAFE], env)
    except (HistoryError, OSError, subprocess.SubprocessError) as e:
        logger.warning("workspace copy of {}: history not imported ({}); one snapshot commit instead", ac.real, e)
        shutil.rmtree(os.path.join(ac.tree, ".git"), ignore_errors=True)
        _git(ac.tree, "init", "-q", "-b", branch, env_home=ac.dir)
        return False
    return True


def _glob_literal(path: str) -> str:
    """``path`` as a gitignore pattern matching only itself."""
    return "".join("\\" + c if c in "*?[\\!# " else c for c in path)


def _quote(path: str) -> bytes:
    """A path for ``git fast-import`` (C-style quoted, so any byte is safe)."""
    raw = path.encode("utf-8", "surrogateescape")
    body = b"".join(b"\\%03o" % c if c < 0x20 or c == 0x7F else b"\\" + bytes([c]) if c in b'"\\' else bytes([c])
                    for c in raw)
    return b'"' + body + b'"'


def _fast_import(tree: str, branch: str, msg: bytes, files: list[str], home: str) -> None:
    """One commit of ``files`` (paths relative to ``tree``) on ``branch``, written by
    ``git fast-import`` as a single pack (``git add`` writes one loose object per file:
    several times slower, see docs/benchmarks.md)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "LANG": "C"}
    proc = subprocess.Popen(["git", *GIT_SAFE, "fast-import", "--quiet", "--done"], cwd=tree, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    w = proc.stdin
    try:
        w.write(b"commit refs/heads/%s\ncommitter swarmd <swarmd@localhost> %d +0000\ndata %d\n%s\n"
                % (branch.encode(), int(time.time()), len(msg), msg))
        for rel in files:
            st = os.lstat(os.path.join(tree, rel))
            if stat.S_ISLNK(st.st_mode):
                mode, data = b"120000", os.readlink(os.path.join(tree, rel)).encode("utf-8", "surrogateescape")
            elif stat.S_ISREG(st.st_mode):
                mode = b"100755" if st.st_mode & 0o111 else b"100644"
                data = _read_copy(tree, rel) or b""
            else:
                continue
            w.write(b"M %s inline %s\ndata %d\n" % (mode, _quote(rel), len(data)) + data + b"\n")
        w.write(b"done\n")
        w.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise WorkspaceError(f"git fast-import in {tree} failed: {err.decode('utf-8', 'replace').strip()[:300]}")


def copy_of(tree: str) -> AgentCopy | None:
    """The :class:`AgentCopy` whose tree is directory ``tree`` (an agent's workspace), or None
    when ``tree`` is not one (no base manifest beside it)."""
    tree = os.path.realpath(tree)
    d = os.path.dirname(tree)
    if os.path.basename(tree) != TREE or not os.path.isfile(os.path.join(d, BASE)):
        return None
    try:
        return AgentCopy(d, _load_base(AgentCopy(d, ""))["real"])
    except (WorkspaceError, KeyError, TypeError):
        return None


class approved_action:
    """``with approved_action(tree, rule): run the action`` around an action a person approved
    in an agent's copy (``tree``; anything else: no-op): the entries it added, modified or
    deleted are recorded in the base manifest, so that the change set's entry each one caused
    (same path, same op, unchanged since) is not asked again (rule ``workspace.approved-action``,
    :func:`change_set`); a ``deny`` still wins, and so does a conflict with the real workspace.
    ``rule``: the approval's rule, kept as the reason. Never raises for the bookkeeping."""

    def __init__(self, tree: str, rule: str = "approval.approved"):
        self.ac, self.rule = copy_of(tree), rule
        self.before: dict[str, os.stat_result] = {}

    def __enter__(self) -> "approved_action":
        if self.ac is not None:
            self.before = scan(self.ac.tree, skip_top_git=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ac is None:
            return
        try:
            after = scan(self.ac.tree, skip_top_git=True)
            base = _load_base(self.ac)
        except (OSError, WorkspaceError) as e:
            logger.warning("approved action in {}: its changes not recorded ({}); they may be asked again",
                           self.ac.tree, e)
            return
        caused = base.setdefault("approved", {})
        for rel, st in self.before.items():
            if rel not in after:
                caused[rel] = {"op": "delete", "sig": None, "rule": self.rule}
        for rel, st in after.items():
            old = self.before.get(rel)
            if old is None or _sig(old) != _sig(st):
                caused[rel] = {"op": "add" if old is None else "modify", "sig": _sig(st), "rule": self.rule}
        _save_base(self.ac, base)


def _carried(base: dict, c: "Change", st: os.stat_result | None) -> str | None:
    """The approval rule when change ``c`` (current copy entry ``st``) is what an approved action
    did to that path (same op, entry unchanged since), else None."""
    a = base.get("approved", {}).get(c.path)
    if a is None:
        return None
    if c.op == "delete":
        same_op = a["op"] == "delete"
    else:
        same_op = a["op"] in ("add", "modify") and c.op in ("add", "modify", "mode")
    if not same_op or (c.op != "delete" and (st is None or a["sig"] != _sig(st))):
        return None
    return a.get("rule") or "approval.approved"


def _save_base(ac: AgentCopy, base: dict) -> None:
    p = os.path.join(ac.dir, BASE)
    tmp = p + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(base))       # one C-encoded string: json.dump writes piece by piece, 5x slower
    os.replace(tmp, p)


def _load_base(ac: AgentCopy) -> dict:
    try:
        with open(os.path.join(ac.dir, BASE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise WorkspaceError(f"base manifest of {ac.dir} unreadable: {e}") from None


# --------------------------------------------------------------------------- judging

class _GitDirs:
    """Memo: does a workspace-relative directory look like a git directory in the
    copy or in the real workspace (:data:`GIT_DIR_MARKERS`, or ``objects`` with ``refs``)?"""

    def __init__(self, roots: tuple[str, ...]):
        self.roots = roots
        self.memo: dict[str, bool] = {}

    def is_git(self, rel_dir: str) -> bool:
        if rel_dir not in self.memo:
            self.memo[rel_dir] = any(self._looks(os.path.join(r, rel_dir) if rel_dir else r) for r in self.roots)
        return self.memo[rel_dir]

    @staticmethod
    def _looks(d: str) -> bool:
        try:
            names = set(os.listdir(d)) if not os.path.islink(d) else set()
        except OSError:
            return False
        return bool(names & GIT_DIR_MARKERS) or {"objects", "refs"} <= names

    def inside_git(self, rel: str) -> str | None:
        """The first ancestor directory of ``rel`` (the workspace root included) that looks like a git dir."""
        parts = rel.split("/")[:-1]
        for i in range(len(parts) + 1):
            d = "/".join(parts[:i])
            if self.is_git(d):
                return d or "."
        return None


def _git_config_text(data: bytes) -> bool:
    """True when ``data`` has a git config section that runs programs or redirects git."""
    text = data[:65536].decode("utf-8", "replace").lower()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            name = s[1:].split("]", 1)[0].split(None, 1)[0].split(".", 1)[0].strip().strip('"')
            if name in GIT_CONFIG_SECTIONS:
                return True
    return False


def _read_copy(tree: str, rel: str, limit: int | None = None) -> bytes | None:
    """Content of a regular file of the copy (opened without following any symlink,
    never blocking on a FIFO), or None when it is not a regular file."""
    try:
        fd = _open_parent(tree, rel, create=False)
    except OSError:
        return None
    try:
        f = os.open(os.path.basename(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    with os.fdopen(f, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        return fh.read() if limit is None else fh.read(limit)


def _symlink_escapes(rel: str, target: str) -> bool:
    if target.startswith("/") or not target:
        return True
    parts: list[str] = rel.split("/")[:-1]
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                return True
            parts.pop()
        else:
            parts.append(p)
    return False


def _protected(rel: str, protect) -> bool:
    for p in PROTECTED:
        if rel == p or rel.startswith(p + "/"):
            return True
    return protect is not None and bool(protect.match(rel))


def _tracked(real: str, home: str) -> set[str] | None:
    """Paths tracked in the real workspace's git index; None when it is not a repository."""
    if not _is_repo(real):
        return None
    try:
        out = _git(real, "ls-files", "-z", env_home=home, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {p for p in out.split("\0") if p}


def change_set(ac: AgentCopy, policy: Policy) -> ChangeSet:
    """Compare the agent's copy with its base and the real workspace and judge every
    difference (see the module docstring). Returns a :class:`ChangeSet` in apply
    order (deletions deepest first, then additions and modifications shallowest
    first). Raises :class:`WorkspaceError` when the base manifest is unreadable."""
    base = _load_base(ac)
    entries: dict[str, dict] = base["entries"]
    masked = set(base.get("masked", ()))
    tree, real = ac.tree, ac.real
    now = scan(tree, skip_top_git=False)
    gitdirs = _GitDirs((tree, real))
    _, protect = _masks(policy)
    tracked: set[str] | None | bool = False
    dirty: set[str] | None = None
    top_git = now.pop(".git", None)
    top_git_dir = top_git is not None and stat.S_ISDIR(top_git.st_mode)
    changes: list[Change] = []
    if top_git is not None and not top_git_dir:
        changes.append(Change("add", ".git", _kind(top_git.st_mode), Decision(
            "deny", "workspace.git-metadata", "a gitfile or link named .git is never applied")))
    for rel in list(now):
        if rel.startswith(".git/") and top_git_dir:
            del now[rel]          # the agent's own repository: never compared, never applied
    for rel, st in now.items():
        old = entries.get(rel)
        if old is not None and old["copy"] == _sig(st):
            continue
        rst = _lstat(real, rel)
        kind = _kind(st.st_mode)
        if rst is not None and _kind(rst.st_mode) == kind == "file" and rel in masked and st.st_size == 0:
            continue          # a masked secret, untouched in substance
        if rst is not None and _same(tree, real, rel, st, rst):
            continue
        op = "add" if rst is None else ("mode" if kind == _kind(rst.st_mode) and kind != "symlink"
                                        and _same_content(tree, real, rel, st, rst) else "modify")
        if kind == "dir" and rst is not None and stat.S_ISDIR(rst.st_mode):
            op = "mode"
        mode = stat.S_IMODE(st.st_mode)
        note = "setuid/setgid/sticky bits stripped" if mode & 0o7000 else ""
        changes.append(Change(op, rel, kind, Decision("allow", "workspace.pending", ""), mode & 0o777, note))
    for rel, old in entries.items():
        if rel in now or (rel.startswith(".git/") or rel == ".git"):
            continue
        rst = _lstat(real, rel)
        if rst is None:
            continue
        changes.append(Change("delete", rel, _kind(rst.st_mode), Decision("allow", "workspace.pending", "")))
    judged: list[Change] = []
    for c in changes:
        if c.op == "delete" and tracked is False:
            tracked = _tracked(real, ac.dir)
        old = entries.get(c.path)
        rst = _lstat(real, c.path)
        conflict = (rst is not None and c.op != "delete") if old is None else old.get("real") != _real_sig(rst)
        existed = bool((old or {}).get("orig"))
        if c.op == "modify" and existed and dirty is None:
            dirty = _dirty(real, ac.dir)
        if c.op == "delete" and tracked is None and not existed:
            d = judge(policy, ac, c, gitdirs, protect, set(), conflict)  # the objective's own file, applied earlier
        else:
            d = judge(policy, ac, c, gitdirs, protect, tracked if tracked is not False else None, conflict,
                      existed=existed, dirty=dirty)
        if d.decision == "ask" and not conflict:
            rule = _carried(base, c, now.get(c.path))
            if rule is not None:     # a person approved the action that made this change: not asked twice
                d = Decision("allow", "workspace.approved-action",
                             f"{c.op} {c.path!r} was made by an approved action ({rule}; was: {d.rule})")
        judged.append(Change(c.op, c.path, c.kind, d, c.mode, c.note))
    judged = _too_large(_collapse(judged), policy.sandbox.max_changeset_entries)
    dels = sorted((c for c in judged if c.op == "delete"), key=lambda c: (-c.path.count("/"), c.path))
    rest = sorted((c for c in judged if c.op != "delete"), key=lambda c: (c.path.count("/"), c.path))
    return ChangeSet(dels + rest)


def _collapse(changes: list[Change]) -> list[Change]:
    """Refused new directories stand for everything added under them (one row, a count in ``note``)."""
    refused = {c.path for c in changes if c.op == "add" and c.kind == "dir" and c.decision.decision == "deny"}
    if not refused:
        return changes
    under: dict[str, int] = {}
    kept: list[Change] = []
    for c in changes:
        parts = c.path.split("/")
        top = next((a for a in ("/".join(parts[:i]) for i in range(1, len(parts))) if a in refused), None)
        if top is not None and c.op != "delete":
            under[top] = under.get(top, 0) + 1
        else:
            kept.append(c)
    return [Change(c.op, c.path, c.kind, c.decision, c.mode, f"and {under[c.path]} entries under it")
            if c.path in under else c for c in kept]


def _same(tree: str, real: str, rel: str, st: os.stat_result, rst: os.stat_result) -> bool:
    if _kind(st.st_mode) != _kind(rst.st_mode):
        return False
    if stat.S_ISDIR(st.st_mode):
        return stat.S_IMODE(st.st_mode) & 0o777 == stat.S_IMODE(rst.st_mode) & 0o777 and not st.st_mode & 0o7000
    if stat.S_IMODE(st.st_mode) != stat.S_IMODE(rst.st_mode):
        return False
    return _same_content(tree, real, rel, st, rst)


def _same_content(tree: str, real: str, rel: str, st: os.stat_result, rst: os.stat_result) -> bool:
    if stat.S_ISLNK(st.st_mode):
        try:
            return os.readlink(os.path.join(tree, rel)) == os.readlink(os.path.join(real, rel))
        except OSError:
            return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != rst.st_size:
        return False
    a = _read_copy(tree, rel)
    b = _read_copy(real, rel)
    return a is not None and a == b


def _too_large(changes: list[Change], cap: int) -> list[Change]:
    """Over ``cap`` entries (``sandbox.max_changeset_entries``) nothing of the set is applied
    entry by entry: every entry not denied asks (rule ``workspace.changeset-too-large``, the
    reason a count by op), so one action cannot land ~100,000 files in the real workspace
    unreviewed (red team rt-e001: an inode bomb under the write cap). Deny stays deny."""
    if len(changes) <= cap:
        return changes
    ops: dict[str, int] = {}
    for c in changes:
        ops[c.op] = ops.get(c.op, 0) + 1
    summary = (f"change set of {len(changes)} entries (" + ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
               + f") is over sandbox.max_changeset_entries={cap}: the whole set waits for approval")
    return [c if c.decision.decision == "deny" else
            Change(c.op, c.path, c.kind, Decision("ask", "workspace.changeset-too-large",
                                                  f"{summary} (this entry: {c.decision.rule})"), c.mode, c.note)
            for c in changes]


#: bytes of each side read to judge a modification as destructive; larger files are judged by size
DESTRUCTIVE_READ = 1024 * 1024
#: a modification keeping less than this share of the old lines (or bytes, past DESTRUCTIVE_READ) asks
DESTRUCTIVE_KEEP = 0.5


def _kept_share(old: bytes, new: bytes) -> float:
    """Share (0..1) of ``old``'s lines still in ``new``: lines difflib matches, plus lines of a
    replaced block that stay at least half similar to their counterpart (so a rename over every
    line, ``sed -i s/a/b/``, keeps them; gutting or overwriting with other text does not).
    The lines both share at their start and end are matched first; when they alone reach
    :data:`DESTRUCTIVE_KEEP` (an append, an edit in one place) that lower bound is returned without
    difflib, which is quadratic on files of many equal lines (``bench/workspace_copy.py``'s apply)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if not a:
        return 1.0
    pre = 0
    while pre < min(len(a), len(b)) and a[pre] == b[pre]:
        pre += 1
    suf = 0
    while suf < min(len(a), len(b)) - pre and a[-1 - suf] == b[-1 - suf]:
        suf += 1
    kept = pre + suf
    if kept >= DESTRUCTIVE_KEEP * len(a):
        return kept / len(a)
    a, b = a[pre:len(a) - suf], b[pre:len(b) - suf]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            kept += i2 - i1
        elif tag == "replace":
            kept += sum(1 for x, y in zip(a[i1:i2], b[j1:j2])
                        if difflib.SequenceMatcher(None, x, y, autojunk=False).ratio() >= 0.5)
    return kept / (len(a) + pre + suf)


def _destructive(ac: AgentCopy, c: Change) -> str | None:
    """Why modification ``c`` of a file the workspace had before the objective destroys most of
    its content (None when it does not): it becomes empty, or no longer a regular file, or keeps
    less than :data:`DESTRUCTIVE_KEEP` of its lines (:func:`_kept_share`; past
    :data:`DESTRUCTIVE_READ` bytes, of its size). Red team rt-d022/d024/d028/d029/d033."""
    try:
        rst = os.lstat(os.path.join(ac.real, c.path))
    except OSError:
        return None
    if not stat.S_ISREG(rst.st_mode) or rst.st_size == 0:
        return None
    if c.kind != "file":
        return f"a {rst.st_size}-byte file becomes a {c.kind}"
    try:
        size = os.lstat(os.path.join(ac.tree, c.path)).st_size
    except OSError:
        return None
    if size == 0:
        return f"emptied (was {rst.st_size} bytes)"
    if max(size, rst.st_size) > DESTRUCTIVE_READ:
        return (f"shrinks from {rst.st_size} to {size} bytes" if size < DESTRUCTIVE_KEEP * rst.st_size else None)
    old, new = _read_copy(ac.real, c.path, DESTRUCTIVE_READ), _read_copy(ac.tree, c.path, DESTRUCTIVE_READ)
    if old is None or new is None:
        return None
    share = _kept_share(old, new)
    return f"keeps {share:.0%} of its {len(old.splitlines())} lines" if share < DESTRUCTIVE_KEEP else None


def _dirty(real: str, home: str) -> set[str]:
    """Paths of the real repository whose work tree or index differs from HEAD (the operator's
    uncommitted work); empty when it is not a repository or has no HEAD."""
    if not _is_repo(real):
        return set()
    try:
        out = _git(real, "diff", "--no-ext-diff", "--no-textconv", "--name-only", "-z", "HEAD", "--",
                   env_home=home, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {p for p in out.split("\0") if p}


def _uncommitted_lost(ac: AgentCopy, rel: str) -> str | None:
    """Why modifying ``rel`` (a file with the operator's uncommitted change) undoes part of that
    change: lines the change added (``git diff -U0 HEAD``) that the copy's version no longer has
    (``git stash``, ``checkout``, ``restore``, ``reset --hard`` in the copy, or an edit of those
    lines). None when every added line is still there. Red team rt-s015."""
    try:
        patch = _git(ac.real, "diff", "--no-ext-diff", "--no-textconv", "--no-color", "-U0", "HEAD", "--", rel,
                     env_home=ac.dir, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    added, hunks = [], False
    for line in patch.splitlines():
        hunks = hunks or line.startswith("@@")
        if hunks and line.startswith("+") and line[1:].strip():
            added.append(line[1:])
    new = _read_copy(ac.tree, rel, DESTRUCTIVE_READ)
    if not added or new is None:
        return None
    have = set(new.decode("utf-8", "surrogateescape").splitlines())
    lost = sum(1 for x in added if x not in have)
    return f"loses {lost} of the {len(added)} lines of the operator's uncommitted change" if lost else None


def judge(policy: Policy, ac: AgentCopy, c: Change, gitdirs: _GitDirs, protect, tracked: set[str] | None,
          conflict: bool, *, existed: bool = False, dirty: "set[str] | None" = None) -> Decision:
    """The decision for one change (the strictest finding wins). Never raises.

    deny: ``workspace.git-metadata`` (a ``.git`` path component anywhere, in any
    case; a path inside a directory that looks like a git directory in the copy
    or the real workspace), ``workspace.git-config`` (a file named ``config``
    with a git section that runs programs), ``workspace.special-file`` (FIFO,
    device, socket), ``workspace.symlink-escape`` (absolute target or one
    leaving the workspace), and whatever ``judge_path`` denies for a write of
    the path in the real workspace (``files.secret``, a real symlink leading
    out, policy ``write_file`` rules). ask: ``workspace.delete-tracked``
    (deleting a file the real repository tracks, or any existing file when
    the real workspace is not a repository), ``workspace.delete-existing``
    (deleting an untracked file the workspace had before the objective:
    ``existed``; only the objective's own files are deleted freely),
    ``workspace.destructive-edit`` (a modification that empties or guts a file
    the workspace had before the objective, :func:`_destructive`), ``workspace.uncommitted-lost``
    (a modification of a file in ``dirty`` that drops lines of the operator's uncommitted
    change, :func:`_uncommitted_lost`), ``workspace.protected``
    (:data:`sandbox.PROTECTED` and ``sandbox.protect``), ``workspace.conflict``
    (the real file changed since the copy was made), and the policy's asks.
    """
    rel = c.path
    parts = rel.split("/")
    found: list[Decision] = []
    if any(p.lower() == ".git" for p in parts):
        return Decision("deny", "workspace.git-metadata", f"{rel!r} is under .git or is a gitfile: never applied")
    g = gitdirs.inside_git(rel + ("/x" if c.kind == "dir" else ""))
    if g is not None:
        return Decision("deny", "workspace.git-metadata",
                        f"{rel!r} is inside {g!r}, which looks like a git directory (HEAD, objects, refs, "
                        "commondir or gitdir): never applied")
    if c.kind in ("fifo", "device", "socket") and c.op != "delete":
        return Decision("deny", "workspace.special-file", f"{rel!r} is a {c.kind}: never applied")
    if c.kind == "symlink" and c.op != "delete":
        try:
            target = os.readlink(os.path.join(ac.tree, rel))
        except OSError:
            target = ""
        if _symlink_escapes(rel, target):
            return Decision("deny", "workspace.symlink-escape",
                            f"{rel!r} is a symlink to {target[:100]!r}, outside the workspace: never applied")
    if c.kind == "file" and c.op != "delete" and parts[-1].lower() == "config":
        data = _read_copy(ac.tree, rel, 65536)
        if data is not None and _git_config_text(data):
            return Decision("deny", "workspace.git-config",
                            f"{rel!r} is a git config with sections that run programs: never applied")
    found.append(judge_path(policy, rel, "write", ac.real, listed_outside=False))
    if c.op == "delete" and (tracked is None or rel in tracked):
        found.append(Decision("ask", "workspace.delete-tracked",
                              f"deleting {rel!r}, " + ("tracked by git" if tracked is not None else
                                                        "an existing file (the workspace is not a repository)")))
    elif c.op == "delete" and existed:
        found.append(Decision("ask", "workspace.delete-existing",
                              f"deleting {rel!r}, a file the workspace had before the objective"))
    if c.op == "modify" and existed:
        why = _destructive(ac, c)
        if why is not None:
            found.append(Decision("ask", "workspace.destructive-edit",
                                  f"{rel!r}, a file the workspace had before the objective, is {why}"))
        why = _uncommitted_lost(ac, rel) if dirty and rel in dirty else None
        if why is not None:
            found.append(Decision("ask", "workspace.uncommitted-lost", f"{rel!r}: the change {why}"))
    if _protected(rel, protect):
        found.append(Decision("ask", "workspace.protected", f"{rel!r} is a protected path (runs code later)"))
    if conflict:
        found.append(Decision("ask", "workspace.conflict", f"{rel!r} changed in the real workspace meanwhile"))
    d = strictest(found, Decision("allow", "workspace.change", "ordinary change"))
    if d.decision == "allow":
        return Decision("allow", d.rule, d.reason)
    return d


# --------------------------------------------------------------------------- applying

def _owner(root: str) -> tuple[int, int] | None:
    """(uid, gid) applied files get when the worker is root: the real workspace's owner."""
    if os.geteuid() != 0:
        return None
    st = os.stat(root)
    return st.st_uid, st.st_gid


def _open_parent(root: str, rel: str, *, create: bool) -> int:
    """A directory fd for the parent of ``rel`` under ``root``, reached component by
    component with ``O_NOFOLLOW`` (``create``: missing directories are made, 0755,
    owned like ``root`` when the worker is root)."""
    owner = _owner(root) if create else None
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for p in rel.split("/")[:-1]:
            try:
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(p, 0o755, dir_fd=fd)
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                if owner is not None:
                    os.fchown(nfd, *owner)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _apply_one(ac: AgentCopy, c: Change) -> None:
    name = os.path.basename(c.path)
    owner = _owner(ac.real)
    dfd = _open_parent(ac.real, c.path, create=c.op != "delete")
    try:
        if c.op == "delete":
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            (os.rmdir if stat.S_ISDIR(st.st_mode) else os.unlink)(name, dir_fd=dfd)
            return
        if c.kind == "dir":
            if c.op == "add":
                os.mkdir(name, 0o700, dir_fd=dfd)
            f = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                if owner is not None and c.op == "add":
                    os.fchown(f, *owner)
                os.fchmod(f, c.mode if c.mode is not None else 0o755)
            finally:
                os.close(f)
            return
        tmp = f".swarmd-apply-{os.getpid()}-{time.monotonic_ns()}"
        if c.kind == "symlink":
            os.symlink(os.readlink(os.path.join(ac.tree, c.path)), tmp, dir_fd=dfd)
            if owner is not None:
                os.chown(tmp, *owner, dir_fd=dfd, follow_symlinks=False)
        else:
            data = _read_copy(ac.tree, c.path)
            if data is None:
                raise WorkspaceError(f"{c.path!r} is no longer a regular file in the copy")
            f = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            with os.fdopen(f, "wb") as fh:
                fh.write(data)
                if owner is not None:
                    os.fchown(fh.fileno(), *owner)
                os.fchmod(fh.fileno(), c.mode if c.mode is not None else 0o644)    # after chown: no setuid
        try:
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError:
            os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(dfd)


def apply(ac: AgentCopy, cs: ChangeSet, *, only: "set[str] | None" = None, approved: bool = False) -> dict:
    """Apply the ``allow`` changes of ``cs`` to the real workspace (with
    ``approved``: the ``ask`` ones too; ``deny`` never), or only the paths in
    ``only``. Updates the base manifest so applied and refused changes are not
    reported again (asked ones stay pending). Returns ``{"applied": [...],
    "refused": [...], "pending": [...]`` (change dicts, :meth:`Change.to_json`) and
    ``"errors": [{"path", "error"}]}``. Never raises for one bad entry (it lands in ``errors``)."""
    base = _load_base(ac)
    out: dict = {"applied": [], "refused": [], "pending": [], "errors": []}
    done: list[str] = []
    for c in cs.changes:
        if only is not None and c.path not in only:
            continue
        want = c.decision.decision == "allow" or (approved and c.decision.decision == "ask")
        if c.decision.decision == "deny":
            out["refused"].append(c.to_json())
            done.append(c.path)
            continue
        if not want:
            out["pending"].append(c.to_json())
            continue
        try:
            _apply_one(ac, c)
        except (OSError, WorkspaceError) as e:
            out["errors"].append({"path": c.path, "error": f"{type(e).__name__}: {e}"})
            continue
        out["applied"].append(c.to_json())
        done.append(c.path)
    _remember(ac, base, done)
    if out["applied"] or out["refused"]:
        logger.info("workspace {}: applied {} change(s), refused {}, pending {}", ac.real, len(out["applied"]),
                    len(out["refused"]), len(out["pending"]))
    return out


def _remember(ac: AgentCopy, base: dict, paths: list[str]) -> None:
    entries = base["entries"]
    for rel in paths:
        base.get("approved", {}).pop(rel, None)
        try:
            st = os.lstat(os.path.join(ac.tree, rel))
        except OSError:
            st = None
        try:
            rst = os.lstat(os.path.join(ac.real, rel))
        except OSError:
            rst = None
        if st is None:
            entries.pop(rel, None)
            continue
        entries[rel] = {"copy": _sig(st), "real": _real_sig(rst), "orig": entries.get(rel, {}).get("orig", False)}
    _save_base(ac, base)


def dismiss(ac: AgentCopy, paths: "list[str]") -> None:
    """Mark changes of ``paths`` as seen without applying them (a person rejected
    them): they are not reported again unless the agent changes them again."""
    _remember(ac, _load_base(ac), list(paths))


def diff_text(ac: AgentCopy, changes: "list[Change] | list[dict]", limit: int = DIFF_CHARS) -> str:
    """A unified diff (real -> copy) of ``changes`` for a person to review, at
    most ``limit`` characters, secrets redacted (:func:`audit.redact`)."""
    parts: list[str] = []
    size = 0
    for c in changes:
        if size > 2 * limit:
            break             # cut below anyway: a set of 100,000 entries is not read in full
        c = c if isinstance(c, dict) else c.to_json()
        rel, op = c["path"], c["op"]
        head = f"{op} {rel} ({c['kind']}): {c['decision']} {c['rule']}"
        if c["kind"] != "file":
            parts.append(head)
            continue
        old = b"" if op == "add" else (_read_copy(ac.real, rel, 262144) or b"")
        new = b"" if op == "delete" else (_read_copy(ac.tree, rel, 262144) or b"")
        if b"\0" in old or b"\0" in new:
            parts.append(head + " (binary)")
            continue
        lines = difflib.unified_diff(old.decode("utf-8", "replace").splitlines(keepends=True),
                                     new.decode("utf-8", "replace").splitlines(keepends=True),
                                     "/dev/null" if op == "add" else f"a/{rel}",
                                     "/dev/null" if op == "delete" else f"b/{rel}")
        parts.append(head + "\n" + "".join(lines))
        size += len(parts[-1])
    text = redact("\n".join(parts))
    return text if len(text) <= limit else text[:limit] + "\n[diff truncated]"


def sync(ac: AgentCopy, policy: Policy) -> dict:
    """One approval point: :func:`change_set` then :func:`apply` of what is allowed.
    Returns :func:`apply`'s dict plus ``diff`` (of the pending changes)."""
    cs = change_set(ac, policy)
    res = apply(ac, cs)
    res["diff"] = diff_text(ac, res["pending"]) if res["pending"] else ""
    return res


def commit(ac: AgentCopy, paths: "list[str]", message: str) -> str | None:
    """Commit ``paths`` (applied changes, relative) in the real workspace's repository as
    swarmd (hooks off, no system or global config). Returns the new commit id, or None
    when the workspace is not a repository or nothing was staged. The agent's own
    commits (in its copy) are never carried over. Raises :class:`WorkspaceError` when
    git fails."""
    if not paths or not os.path.isdir(os.path.join(ac.real, ".git")):
        return None
    home = ac.dir
    _git(ac.real, "add", "-A", "--", *paths, env_home=home)
    if not _git(ac.real, "diff", "--cached", "--name-only", env_home=home).strip():
        return None
    _git(ac.real, "commit", "-q", "--no-verify", "--no-gpg-sign", "-m", message, env_home=home)
    return _git(ac.real, "rev-parse", "HEAD", env_home=home).strip()


def iter_changes(res: dict) -> Iterator[dict]:
    """The rows of a :func:`sync` result for printing: applied, refused, pending, errors."""
    for c in res["applied"]:
        yield {"change": "applied", **c}
    for c in res["refused"]:
        yield {"change": "refused", **c}
    for c in res["pending"]:
        yield {"change": "pending", **c}
    for e in res["errors"]:
        yield {"change": "error", **e}
    if res.get("commit"):
        yield {"change": "commit", "path": ".", "commit": res["commit"]}


