"""One resource envelope per objective: cgroup limits on memory, processes and CPU, and a
private ``/tmp`` + ``/dev/shm`` capped in bytes and inodes.

:func:`envelope_for` gives the objective's :class:`Envelope` (kept until :func:`release`);
``execute.py`` puts every sandboxed process of the objective into its cgroups
(:meth:`Envelope.procs`) and mounts one capped scratch filesystem per command
(:func:`scratch`).  After each command :meth:`Envelope.breach` names what was exceeded (the
action fails with that reason; the worker lives).  :func:`detect` finds cgroups v1 or v2
(a subtree of the worker's own cgroup); without them, or without ``mount``, limits fall back
to rlimits and bubblewrap's tmpfs, with one warning.  Details: docs/design.md.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from loguru import logger

CGROUP_ROOT = "/sys/fs/cgroup"
#: controllers the envelope limits
CONTROLLERS = ("memory", "pids", "cpu")
#: cpu.cfs_period_us / the period of cpu.max, microseconds (the kernel's default)
CPU_PERIOD_US = 100_000


@dataclass(frozen=True, slots=True)
class Cgroups:
    """What this machine offers: ``version`` 1, 2 or 0 (none); ``bases``: controller ->
    the worker's own cgroup directory in that controller's hierarchy (v2: one directory
    for all); ``reason``: one line for start-up logs."""

    version: int
    bases: dict[str, str]
    reason: str


def _own_path(controller: str | None) -> str:
    """The worker's cgroup path in ``controller``'s v1 hierarchy (None: the v2 one), from /proc/self/cgroup."""
    try:
        lines = open("/proc/self/cgroup", encoding="utf-8").read().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if (controller is None and ctrls == "") or (controller is not None and controller in ctrls.split(",")):
            return path
    return "/"


def _writable_base(mount: str, own: str) -> str | None:
    for base in (os.path.join(mount, own.lstrip("/")), mount):  # own cgroup first (delegated), else the root
        if os.path.isdir(base) and os.access(base, os.W_OK):
            return base
    return None


@lru_cache(maxsize=1)
def detect() -> Cgroups:
    """Find the cgroup hierarchies the envelope can use, once per process. Never raises;
    logs a warning when there are none."""
    v2 = next((m for m in (CGROUP_ROOT, os.path.join(CGROUP_ROOT, "unified"))
               if os.path.isfile(os.path.join(m, "cgroup.controllers"))), None)
    if v2 is not None:
        have = set(open(os.path.join(v2, "cgroup.controllers"), encoding="utf-8").read().split())
        base = _writable_base(v2, _own_path(None))
        if {"memory", "pids", "cpu"} <= have and base is not None:
            c = Cgroups(2, {k: base for k in CONTROLLERS}, f"cgroup v2 envelope under {base}")
            logger.info("governor envelope: {}", c.reason)
            return c
    bases = {}
    for ctrl in CONTROLLERS:
        mount = os.path.join(CGROUP_ROOT, ctrl)
        if os.path.isfile(os.path.join(mount, "cgroup.procs")):
            base = _writable_base(mount, _own_path(ctrl))
            if base is not None:
                bases[ctrl] = base
    if len(bases) == len(CONTROLLERS):
        c = Cgroups(1, bases, "cgroup v1 envelope (memory, pids, cpu hierarchies)")
        logger.info("governor envelope: {}", c.reason)
        return c
    c = Cgroups(0, {}, "no writable cgroup hierarchy with memory, pids and cpu (v1 or v2): each command is limited "
                       "by rlimits only, an objective's processes together are not")
    logger.warning("governor envelope: {}", c.reason)
    return c


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _read_counter(path: str, key: str | None = None) -> int:
    """An integer file, or the ``key N`` line of a flat-keyed file; 0 when absent."""
    try:
        text = open(path, encoding="ascii").read()
    except OSError:
        return 0
    if key is None:
        return int(text.strip() or 0)
    m = re.search(rf"^{re.escape(key)} (\d+)$", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


@dataclass
class Envelope:
    """The cgroups of one objective (``dirs``: controller -> directory; empty without cgroups).

    ``memory_bytes`` (memory.limit_in_bytes / memory.max), ``pids`` (pids.max), ``cpu_cores``
    (CFS quota per :data:`CPU_PERIOD_US`). Shared by every command of the objective."""

    name: str
    version: int
    memory_bytes: int
    pids: int
    cpu_cores: float
    dirs: dict[str, str] = field(default_factory=dict)

    def _files(self) -> dict[str, tuple[str, str | None]]:
        """counter name -> (file, key) of the events that mean a breach."""
        if self.version == 2:
            d = self.dirs["memory"]
            return {"oom": (os.path.join(d, "memory.events"), "oom_kill"), "pids": (os.path.join(d, "pids.events"), "max")}
        return {"oom": (os.path.join(self.dirs["memory"], "memory.oom_control"), "oom_kill"),
                "memfail": (os.path.join(self.dirs["memory"], "memory.failcnt"), None),
                "pids": (os.path.join(self.dirs["pids"], "pids.events"), "max")}

    def counters(self) -> dict[str, int]:
        """The breach counters now (compare before and after a command with :meth:`breach`)."""
        if not self.dirs:
            return {}
        return {k: _read_counter(f, key) for k, (f, key) in self._files().items()}

    def breach(self, before: dict[str, int]) -> str | None:
        """What the envelope stopped since ``before`` (:meth:`counters`), as a reason, or None."""
        after = self.counters()
        if after.get("oom", 0) > before.get("oom", 0) or (
                self.version == 1 and after.get("memfail", 0) > before.get("memfail", 0)
                and after.get("oom", 0) > before.get("oom", 0)):
            return (f"stopped: the objective's memory envelope ({self.memory_bytes // (1024 * 1024)} MiB, "
                    "execution.memory_mb) is exhausted")
        if after.get("pids", 0) > before.get("pids", 0):
            return f"refused: the objective's process envelope is full (pids.max={self.pids}, execution.max_processes)"
        return None

    def procs(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files a process writes its pid to, to enter this envelope."""
        return tuple(os.path.join(d, "cgroup.procs") for d in dict.fromkeys(self.dirs.values()))

    def close(self) -> None:
        """Kill what is left in the envelope and remove its cgroups. Never raises."""
        for d in dict.fromkeys(self.dirs.values()):
            _remove(d, kill=True)


def _remove(d: str, *, kill: bool) -> bool:
    """Remove cgroup directory ``d`` (``kill``: SIGKILL its processes first, retrying for up to
    ~0.5 s while they exit). True when it is gone. Never raises."""
    for _ in range(50 if kill else 1):
        try:
            pids = open(os.path.join(d, "cgroup.procs"), encoding="ascii").read().split()
        except OSError:
            return not os.path.isdir(d)
        for p in pids if kill else ():
            try:
                os.kill(int(p), 9)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        try:
            os.rmdir(d)
            return True
        except OSError:
            if kill:
                threading.Event().wait(0.01)
    return False


_lock = threading.Lock()
_envelopes: dict[str, Envelope] = {}


def _create(name: str, memory_bytes: int, pids: int, cpu_cores: float) -> Envelope:
    cg = detect()
    env = Envelope(name, cg.version, memory_bytes, pids, cpu_cores)
    if cg.version == 0:
        return env
    safe = owner_tag() + "-" + (re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "_")
    quota = max(1000, int(CPU_PERIOD_US * cpu_cores))
    try:
        if cg.version == 2:
            parent = os.path.join(cg.bases["memory"], "swarmd")
            os.makedirs(parent, exist_ok=True)
            _write(os.path.join(cg.bases["memory"], "cgroup.subtree_control"), "+memory +pids +cpu")
            _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids +cpu")
            d = os.path.join(parent, safe)
            os.makedirs(d, exist_ok=True)
            _write(os.path.join(d, "memory.max"), str(memory_bytes))
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                _write(os.path.join(d, "memory.swap.max"), "0")
            _write(os.path.join(d, "pids.max"), str(pids))
            _write(os.path.join(d, "cpu.max"), f"{quota} {CPU_PERIOD_US}")
            env.dirs = {k: d for k in CONTROLLERS}
        else:
            for ctrl in CONTROLLERS:
                d = os.path.join(cg.bases[ctrl], "swarmd", safe)
                os.makedirs(d, exist_ok=True)
                env.dirs[ctrl] = d
            m = env.dirs["memory"]
            _write(os.path.join(m, "memory.limit_in_bytes"), str(memory_bytes))
            if os.path.exists(os.path.join(m, "memory.memsw.limit_in_bytes")):
                _write(os.path.join(m, "memory.memsw.limit_in_bytes"), str(memory_bytes))
            _write(os.path.join(env.dirs["pids"], "pids.max"), str(pids))
            _write(os.path.join(env.dirs["cpu"], "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(os.path.join(env.dirs["cpu"], "cpu.cfs_quota_us"), str(quota))
    except OSError as e:
        logger.warning("governor envelope {}: cannot set up cgroups ({}); rlimits only", name, e)
        env.close()
        env.dirs = {}
    return env


def envelope_for(objective_id: str | None, *, memory_mb: int, max_processes: int, cpu_cores: float) -> Envelope:
    """The envelope of ``objective_id`` (created with these limits on first use; the same
    object for every later command of the objective until :func:`release`). ``None``: a
    fresh envelope for one call (the caller closes it). Never raises."""
    if objective_id is None:
        return _create(f"call-{threading.get_ident()}-{next(_serial)}",
                       memory_mb * 1024 * 1024, max_processes, cpu_cores)
    with _lock:
        env = _envelopes.get(objective_id)
        if env is None:
            env = _envelopes[objective_id] = _create(f"obj-{objective_id}", memory_mb * 1024 * 1024,
                                                     max_processes, cpu_cores)
        return env


def _start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` (clock ticks after boot, /proc/PID/stat field 22), None when it is gone."""
    try:
        text = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
        return int(text.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_tag(pid: int | None = None) -> str:
    """``p<pid>-<start ticks>``: the process that owns an envelope, leading its cgroup's name
    (``swarmd/p<pid>-<ticks>-obj-<objective>``). Unique on the host until reboot (a reused pid
    has another start time), so two workers sharing a hierarchy (a v1 controller the worker's
    cgroup does not have of its own, like ``cpu``) never share, kill or remove each other's
    envelopes, and :func:`sweep` can tell whether the owner is still running."""
    pid = os.getpid() if pid is None else pid
    return f"p{pid}-{_start_ticks(pid)}"


_OWNED = re.compile(r"^p(\d+)-(\d+)-")


def sweep() -> list[str]:
    """Remove envelopes left over under ``swarmd/`` by a worker that crashed (called when a
    worker starts): a cgroup whose owner (:func:`owner_tag`) is no longer running, with any
    process left in it killed (its objective is not running: nothing runs it any more); one of
    a name without an owner (older workers) only when empty. Envelopes of running processes
    (this one included) are left alone. Owners are looked up in this process's pid namespace:
    workers sharing a hierarchy must share it too (systemd units and nspawn containers get
    their own delegated subtree). Returns the directories removed. Never raises."""
    removed: list[str] = []
    for base in dict.fromkeys(detect().bases.values()):
        parent = os.path.join(base, "swarmd")
        try:
            names = sorted(e.name for e in os.scandir(parent) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for name in names:
            m = _OWNED.match(name)
            if m is not None and _start_ticks(int(m.group(1))) == int(m.group(2)):
                continue                                    # its worker runs: maybe between two commands
            d = os.path.join(parent, name)
            if _remove(d, kill=m is not None):
                removed.append(d)
    if removed:
        logger.info("governor envelope: removed {} left-over cgroup(s) of ended workers: {}", len(removed),
                    ", ".join(removed[:5]))
    return removed


def release(objective_id: str) -> None:
    """The objective ended: kill what is left in its envelope and remove it. Never raises."""
    with _lock:
        env = _envelopes.pop(objective_id, None)
    if env is not None:
        env.close()


def _release_all() -> None:
    for oid in list(_envelopes):
        release(oid)


atexit.register(_release_all)


class _Serial:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def __next__(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


_serial = _Serial()

# ------------------------------------------------------------------ the capped scratch filesystem

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


@dataclass
class Scratch:
    """One command's private ``/tmp`` and ``/dev/shm``: subdirectories ``tmp`` and ``shm`` of
    one tmpfs of ``size_bytes`` and ``inodes`` (None when it could not be mounted: then
    bubblewrap's byte-capped tmpfs is used)."""

    path: str | None
    size_bytes: int
    inodes: int

    def full(self) -> str | None:
        """A reason when the command filled it (bytes or inodes), else None."""
        if self.path is None:
            return None
        try:
            st = os.statvfs(self.path)
        except OSError:
            return None
        if st.f_bfree == 0 or st.f_ffree == 0:
            what = "bytes" if st.f_bfree == 0 else "inodes"
            return (f"stopped: /tmp and /dev/shm are full ({what}; sandbox.tmp_size_mb="
                    f"{self.size_bytes // (1024 * 1024)}, sandbox.tmp_inodes={self.inodes})")
        return None

    def close(self) -> None:
        """Unmount and remove it. Never raises."""
        if self.path is None:
            return
        _libc.umount2(self.path.encode(), MNT_DETACH)
        shutil.rmtree(self.path, ignore_errors=True)
        self.path = None


_warned_scratch = [False]


def scratch(size_bytes: int, inodes: int, owner: int | None) -> Scratch:
    """Mount a fresh tmpfs of ``size_bytes`` and ``inodes`` with ``tmp`` and ``shm`` (mode
    1777; owned by uid ``owner`` when given) for one command. Needs root; otherwise returns
    ``Scratch(None, ...)`` and warns once (bytes then capped by bubblewrap, inodes not)."""
    d = tempfile.mkdtemp(prefix="swarmd-scratch-")
    opts = f"size={size_bytes},nr_inodes={inodes},mode=0755".encode()
    if _libc.mount(b"swarmd-scratch", d.encode(), b"tmpfs", 0, opts) != 0:
        err = ctypes.get_errno()
        os.rmdir(d)
        if not _warned_scratch[0]:
            _warned_scratch[0] = True
            logger.warning("governor envelope: cannot mount a capped tmpfs ({}): /tmp and /dev/shm are capped in "
                           "bytes by bubblewrap, not in inodes", os.strerror(err))
        return Scratch(None, size_bytes, inodes)
    for sub in ("tmp", "shm", "tmp/home"):
        p = os.path.join(d, sub)
        os.mkdir(p)
        os.chmod(p, 0o700 if sub == "tmp/home" else 0o1777)
        if owner is not None:
            os.chown(p, owner, owner)
    return Scratch(d, size_bytes, inodes)
