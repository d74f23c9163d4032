"""Confinement: every tool command runs inside bubblewrap (``bwrap``).

The sandbox is the security boundary; the policy (the ``shell`` package) judges intent on top.
:func:`bwrap_argv` builds the command: the workspace read-write at its real path, a minimal
read-only system and a curated ``/etc``, a private ``/tmp`` and ``/dev/shm`` (capped,
:func:`envelope.scratch`) with a private HOME, secret files of the workspace masked
(:func:`workspace_masks`), files that run code later read-only (:data:`PROTECTED`), new PID,
IPC, UTS, cgroup and network namespaces (only ``lo``; with ``sandbox.network`` the proxy of
:mod:`.netproxy`), never root on the host (:data:`HOST_UID`).  :func:`probe` tells whether
this machine can do all of that; when it cannot, the governor fails closed.  Item by item:
docs/design.md.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache

from loguru import logger

from . import netproxy
from .paths import copy_origin, is_secret, walk
from .policy import Policy, compile_globs

#: True when the worker runs as root: bubblewrap then runs without a user namespace and the command
#: drops to :data:`HOST_UID` (setpriv), so the sandboxed user is never root on the host and
#: RLIMIT_NPROC binds; otherwise bubblewrap maps uid 1000 inside to the worker's own (non-root) uid
PRIVILEGED = os.geteuid() == 0
#: host uid (and gid) of sandboxed processes when the worker is root: owns nothing else on the host
HOST_UID = 61000
#: uid inside the sandbox (a user namespace maps it to HOST_UID, or to a non-root worker's own uid)
SANDBOX_UID = 1000
#: drops root to HOST_UID inside the sandbox, after bubblewrap has set up the mounts
SETPRIV = "/usr/bin/setpriv"
#: then maps SANDBOX_UID to HOST_UID in a user namespace of its own (util-linux >= 2.38)
UNSHARE = "/usr/bin/unshare"
#: HOME inside the sandbox (on the private /tmp)
SANDBOX_HOME = "/tmp/home"
#: /etc entries bound read-only when they exist (nothing secret; no shadow, sudoers, ssh keys)
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/nsswitch.conf",
             "/etc/localtime", "/etc/timezone", "/etc/ssl/certs", "/etc/ca-certificates", "/etc/os-release",
             "/etc/mime.types", "/etc/magic", "/etc/protocols", "/etc/services", "/etc/python3", "/etc/python3.11",
             "/etc/python3.12", "/etc/perl", "/etc/gitattributes",
             "/etc/lsb-release", "/etc/debian_version", "/etc/papersize", "/etc/locale.alias")
#: runs the proxy bridge inside the sandbox (``sandbox.network``)
BRIDGE_PYTHON = "/usr/bin/python3"
#: workspace-relative paths mounted read-only when they exist (they run code later, outside any sandbox)
PROTECTED = (".git/hooks", ".git/config", ".git/info/attributes", ".gitmodules", ".vscode", ".idea", ".husky",
             ".devcontainer", ".github/workflows", ".gitlab-ci.yml", ".pre-commit-config.yaml", ".envrc",
             ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".mcp.json")
#: directories not searched for secret files (large, generated, or handled by PROTECTED)
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
                       ".ruff_cache", ".pytest_cache", "site-packages"})
#: at most this many directory entries are looked at when searching for secrets
MASK_SCAN_LIMIT = 50_000

_PASSWD = (f"root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:{SANDBOX_UID}:{SANDBOX_UID}:swarmd agent:"
           f"{SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
_GROUP = f"root:x:0:\nagent:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"


@dataclass(frozen=True, slots=True)
class Confinement:
    """What this machine can confine commands with.

    ``kind``: ``"bwrap"`` (every shell command runs in the sandbox) or
    ``"none"`` (no working bubblewrap or no user namespaces: the governor
    fails closed); ``bwrap``: path of the binary; ``reason``: one line for
    start-up logs and ``swarmctl status``; ``hostname``: whether the sandbox
    can name its own UTS namespace (``--hostname sandbox``): False under
    systemd's ``ProtectHostname=yes``, whose seccomp filter refuses
    ``sethostname(2)`` even in a new namespace (the command then sees the
    service's hostname).
    """

    kind: str
    bwrap: str | None
    reason: str
    hostname: bool = True

    @property
    def available(self) -> bool:
        """True when commands run inside bubblewrap."""
        return self.kind == "bwrap"


NONE = Confinement("none", None, "sandbox disabled")


@lru_cache(maxsize=1)
def probe() -> Confinement:
    """Find out once per process whether bubblewrap works here, with the same
    namespaces as :func:`bwrap_argv` (user namespaces included).

    Returns a :class:`Confinement`; never raises. Logs a warning when commands
    cannot be confined (the governor then asks for every shell command that
    is not harmless by construction).
    """
    path = shutil.which("bwrap")
    if not path:
        c = Confinement("none", None, "bwrap (bubblewrap) is not installed: shell commands need approval")
    elif PRIVILEGED and not (os.access(SETPRIV, os.X_OK) and os.access(UNSHARE, os.X_OK)):
        c = Confinement("none", None, f"{SETPRIV} or {UNSHARE} (util-linux) is missing: a root worker cannot drop the "
                                      "sandboxed user to a non-root uid; shell commands need approval")
    else:
        ok, err = _try_bwrap(path, hostname=True)
        hostname = ok
        if not ok and "hostname" in err:     # ProtectHostname=yes: the same sandbox, unnamed
            ok, err = _try_bwrap(path, hostname=False)
        c = (Confinement("bwrap", path, f"bubblewrap sandbox ({path})" if hostname else
                         f"bubblewrap sandbox ({path}; hostname not set: sethostname(2) is refused here)",
                         hostname=hostname) if ok else
             Confinement("none", None, f"bwrap cannot create its namespaces here ({err or 'failed'}); "
                                       "shell commands need approval"))
    (logger.info if c.available else logger.warning)("governor confinement: {}", c.reason)
    return c


def _try_bwrap(path: str, *, hostname: bool) -> tuple[bool, str]:
    """Run ``/usr/bin/true`` in bubblewrap with :func:`bwrap_argv`'s namespace flags (and its
    ``--hostname`` when ``hostname``). Returns (it worked, bwrap's error: at most 200 characters)."""
    argv = [*_prefix(path, hostname), "--ro-bind", "/usr", "/usr", *_system_links(), "--proc", "/proc",
            "--dev", "/dev", "--tmpfs", "/tmp", "--", *_drop(), "/usr/bin/true"]
    try:
        r = subprocess.run(argv, capture_output=True, timeout=20)
        return r.returncode == 0, r.stderr.decode("utf-8", "replace").strip()[:200]
    except (OSError, subprocess.SubprocessError) as e:
        return False, str(e)[:200]


def _prefix(bwrap: str, hostname: bool) -> list[str]:
    """The start of every bubblewrap command line, the probe's and :func:`bwrap_argv`'s alike:
    the program, :func:`_namespaces`, ``--hostname sandbox`` when ``hostname``, and the
    sandbox's own session that dies with the worker."""
    return [bwrap, *_namespaces(), *(["--hostname", "sandbox"] if hostname else []), "--die-with-parent",
            "--new-session"]


def _namespaces() -> list[str]:
    """Namespaces and capabilities: with a root worker, no user namespace (root sets up the
    mounts) and only the capabilities setpriv needs to drop to :data:`HOST_UID` (and to enter
    the workspace, owned by that uid); setuid to a non-root uid clears them all before the
    command runs. Otherwise a user namespace mapping uid 1000 to the worker's own uid."""
    if PRIVILEGED:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                "--cap-add", "CAP_DAC_OVERRIDE"]
    return ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--cap-drop", "ALL"]


def _drop() -> list[str]:
    """The prefix that runs the command as :data:`HOST_UID` with no capabilities, seen inside as
    :data:`SANDBOX_UID` through a user namespace of its own (root worker only; otherwise
    bubblewrap's user namespace does the same for the worker's uid)."""
    if not PRIVILEGED:
        return []
    return [SETPRIV, f"--reuid={HOST_UID}", f"--regid={HOST_UID}", "--clear-groups", "--inh-caps=-all",
            "--no-new-privs", "--", UNSHARE, "--user", f"--map-user={SANDBOX_UID}", f"--map-group={SANDBOX_UID}", "--"]


_handed_over: set[str] = set()


def hand_over(root: str, limit: int = MASK_SCAN_LIMIT) -> None:
    """Give the entries of workspace ``root`` to :data:`HOST_UID` (root worker only), so that
    the non-root sandboxed user can work in it. Symbolic links are not followed; files with
    other hard links (which may be files outside the workspace) and special files keep their
    owner. Walks at most ``limit`` entries, once per workspace and process (later entries are
    made by the sandboxed user itself; the root directory is checked every time). Never raises."""
    if not PRIVILEGED:
        return
    try:
        if root in _handed_over and os.lstat(root).st_uid == HOST_UID:
            return
    except OSError:
        return
    _handed_over.add(root)

    def give(path: str, st: os.stat_result) -> None:
        if st.st_uid != HOST_UID and (stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1)):
            try:
                os.chown(path, HOST_UID, HOST_UID, follow_symlinks=False)
            except OSError:
                pass
    try:
        give(root, os.lstat(root))
    except OSError:
        return
    for e in walk(root, limit=limit):
        try:
            give(e.path, e.stat(follow_symlinks=False))
        except OSError:
            pass


def _system_links() -> list[str]:
    out: list[str] = []
    for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    return out


_runtime_lock = threading.Lock()
_runtime: str | None = None


def _runtime_dir() -> str:
    """A private directory with the synthetic ``passwd``/``group`` and the empty
    mask file (created once per process, again if something removed it;
    removed when the process exits)."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None and os.path.isfile(os.path.join(_runtime, "empty")):
            return _runtime
        d = tempfile.mkdtemp(prefix="swarmd-sandbox-")
        atexit.register(shutil.rmtree, d, True)
        for name, text in (("passwd", _PASSWD), ("group", _GROUP), ("empty", "")):
            p = os.path.join(d, name)
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(p, 0o444)
        _runtime = d
        return d


@dataclass(frozen=True, slots=True)
class Masks:
    """Workspace paths hidden from a command: ``files`` (an empty file is
    bound over each), ``dirs`` (an empty read-only tmpfs), ``protected``
    (bound read-only), ``complete``: False when the secret search stopped at
    :data:`MASK_SCAN_LIMIT` entries."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]
    protected: tuple[str, ...]
    complete: bool = True


#: workspaces whose mask lists are kept (least recently used dropped first)
MASK_CACHE_SIZE = 64
_mask_cache: "dict[tuple[str, int], tuple[Policy, tuple[tuple[str, tuple | None], ...], Masks]]" = {}
_mask_lock = threading.Lock()


def _dir_sig(path: str) -> "tuple | None":
    """What changes whenever a directory's entries change: inode and ctime (a process can set a
    directory's mtime back, never its ctime); None when it is not there."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns, st.st_mode


def workspace_masks(root: str, policy: Policy) -> Masks:
    """Search workspace ``root`` (a real path) for secret files and protected paths.

    A file or directory is masked when its path matches the built-in secret
    list or ``files.secrets`` (:func:`paths.is_secret`) or its
    workspace-relative path matches ``sandbox.mask``. Symbolic links are not
    masked (their targets outside the workspace are not mounted; inside, the
    target itself is found). Directories in :data:`SKIP_DIRS` are not searched.

    The result is kept per workspace and policy (:data:`MASK_CACHE_SIZE` workspaces) and
    used again while no searched directory (nor the parent of a :data:`PROTECTED` path)
    changed its inode or ctime: any entry added, removed or renamed in a directory changes
    its ctime, which no process can set back. Checking that is one ``lstat`` per directory
    instead of reading and matching every entry (4.7 of 40 ms of a command's start-up in a
    1,000-file workspace, ``bench/governor.py``). An incomplete search is never kept.
    """
    key = (root, id(policy))
    with _mask_lock:
        hit = _mask_cache.get(key)
    if hit is not None and hit[0] is policy and all(_dir_sig(d) == sig for d, sig in hit[1]):
        return hit[2]
    watched = [(os.path.join(root, d), None) for d in dict.fromkeys(os.path.dirname(p) for p in PROTECTED)]
    watched = [(root, _dir_sig(root))] + [(d, _dir_sig(d)) for d, _ in watched]
    masks = _search_masks(root, policy, watched)
    if masks.complete:
        with _mask_lock:
            _mask_cache.pop(key, None)
            _mask_cache[key] = (policy, tuple(watched), masks)
            while len(_mask_cache) > MASK_CACHE_SIZE:
                _mask_cache.pop(next(iter(_mask_cache)))
    return masks


def _search_masks(root: str, policy: Policy, watched: "list[tuple[str, tuple | None]]") -> Masks:
    """The search of :func:`workspace_masks`; appends each directory searched, with its
    :func:`_dir_sig` taken before its entries are read, to ``watched``."""
    extra = compile_globs(list(policy.sandbox.mask), path=True)
    files: list[str] = []
    dirs: list[str] = []
    masked: set[str] = set()
    seen = 0

    def descend(e: os.DirEntry[str]) -> bool:
        if e.name in SKIP_DIRS or e.path in masked:
            return False
        watched.append((e.path, _dir_sig(e.path)))
        return True

    for e in walk(root, limit=MASK_SCAN_LIMIT, descend=descend):
        seen += 1
        if e.is_symlink():
            continue
        rel = e.path[len(root) + 1:]
        if is_secret(policy, e.path) or (extra is not None and extra.match(rel)):
            is_dir = e.is_dir(follow_symlinks=False)
            (dirs if is_dir else files).append(e.path)
            masked.add(e.path)
    complete = seen < MASK_SCAN_LIMIT
    if not complete:
        logger.warning("sandbox: secret search in {} stopped after {} entries", root, MASK_SCAN_LIMIT)
    protect = compile_globs(list(policy.sandbox.protect), path=True)
    protected = [os.path.join(root, p) for p in PROTECTED if os.path.lexists(os.path.join(root, p))]
    if protect is not None:
        def descend_all(e: os.DirEntry[str]) -> bool:       # masked directories too
            if e.name in SKIP_DIRS:
                return False
            if e.path in masked:
                watched.append((e.path, _dir_sig(e.path)))
            return True
        protected += [e.path for e in walk(root, depth=3, descend=descend_all) if protect.match(e.path[len(root) + 1:])]
    protected = [p for p in dict.fromkeys(protected) if not os.path.islink(p)]
    return Masks(tuple(files), tuple(dirs), tuple(protected), complete)


def _parents(dest: str, made: set[str]) -> list[str]:
    """``--dir`` operations making the parents of mount point ``dest`` traversable (0755) by the
    sandboxed user (bubblewrap run by root creates them 0700); ``made``: parents already made."""
    out: list[str] = []
    parent = os.path.dirname(dest)
    todo = []
    while parent != "/" and parent not in made:
        todo.append(parent)
        made.add(parent)
        parent = os.path.dirname(parent)
    for d in reversed(todo):
        out += ["--perms", "0755", "--dir", d]
    return out


def bwrap_argv(conf: Confinement, root: str, policy: Policy, masks: Masks, cwd: str | None = None,
               proxy_socket: str | None = None, scratch: str | None = None) -> list[str]:
    """The bwrap prefix for one command in workspace ``root`` (real path);
    append the command's argv. The layout: docs/design.md, swarmd.governor.sandbox.
    With ``sandbox.network`` the prefix ends with the proxy bridge, which
    execs the appended argv; ``proxy_socket``: the proxy's unix socket
    (default: :func:`netproxy.shared` for ``policy``). ``scratch``: a capped tmpfs with ``tmp``,
    ``tmp/home`` and ``shm`` (:func:`envelope.scratch`) bound at ``/tmp`` and ``/dev/shm``;
    without it both are bubblewrap tmpfs of ``sandbox.tmp_size_mb`` (bytes capped, not inodes).

    Raises ``RuntimeError`` when ``conf`` is not a working bubblewrap,
    ``OSError`` when the proxy cannot be started.
    """
    if not conf.available or conf.bwrap is None:
        raise RuntimeError("bwrap_argv needs a working bubblewrap (see sandbox.probe())")
    sb = policy.sandbox
    rt = _runtime_dir()
    a = _prefix(conf.bwrap, conf.hostname)
    a += ["--ro-bind", "/usr", "/usr", *_system_links()]
    made: set[str] = set()
    for f in ETC_FILES:
        if os.path.exists(f):
            a += [*_parents(f, made), "--ro-bind", f, f]
    a += ["--ro-bind", os.path.join(rt, "passwd"), "/etc/passwd", "--ro-bind", os.path.join(rt, "group"),
          "/etc/group", "--proc", "/proc", "--dev", "/dev"]
    if scratch is not None:  # one capped tmpfs (bytes and inodes) for /tmp and /dev/shm
        a += ["--bind", os.path.join(scratch, "tmp"), "/tmp", "--bind", os.path.join(scratch, "shm"), "/dev/shm"]
    else:  # --dev gives an unbounded /dev/shm: replaced by a capped one
        size = str(sb.tmp_size_mb * 1024 * 1024)
        a += ["--size", size, "--tmpfs", "/tmp", "--dir", SANDBOX_HOME, "--size", size, "--tmpfs", "/dev/shm"]
    a += _parents(root, made)
    a += ["--bind", root, root]
    empty = os.path.join(rt, "empty")
    for f in masks.files:
        a += ["--ro-bind", empty, f]
    for d in masks.dirs:
        a += ["--size", "4096", "--tmpfs", d, "--remount-ro", d]
    for p in masks.protected:
        a += ["--ro-bind", p, p]
    origin = copy_origin(root)
    if origin is not None:    # an agent's copy: also at the real workspace's path (masks carried: recursive bind)
        a += [*_parents(origin, made), "--bind", root, origin]
    a += ["--chdir", cwd or root]
    if not sb.network:
        return a + ["--", *_drop()]
    sock = proxy_socket or netproxy.shared(policy).socket_path
    a += [*_parents(netproxy.SANDBOX_SOCKET, made), "--bind", sock, netproxy.SANDBOX_SOCKET]
    for k, v in netproxy.PROXY_ENV.items():
        a += ["--setenv", k, v]
    return a + ["--", *_drop(), BRIDGE_PYTHON, "-I", "-S", "-c", netproxy.BRIDGE, netproxy.SANDBOX_SOCKET]
