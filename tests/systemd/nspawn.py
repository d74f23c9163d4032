"""A real systemd booted as PID 1 in ``systemd-nspawn`` over an overlay of this machine's root.

:class:`Container` mounts a tmpfs, an overlay whose lower layer is the host's
``/`` (so the container has the host's packages, Python and pip cache) and
whose upper layer is on that tmpfs (so nothing it writes reaches the host),
boots ``/usr/lib/systemd/systemd`` in it with a private network (only its own
loopback: the host's ports and services are out of reach, and its own
services, e.g. Debian's redis-server, listen inside), and runs commands in
it with ``nsenter``.  ``systemd-machined`` is not needed (``--register=no
--keep-unit``), so this works on a host whose PID 1 is not systemd.

:func:`why_not` says why a container cannot be booted here (not root, no
``systemd-nspawn``, no overlayfs), or ``None``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.wait import LONG_S

SYSTEMD = Path("/usr/lib/systemd/systemd")
#: PATH inside the container: the system's only, as a service or an admin's root shell has it.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def why_not() -> str | None:
    """Why no container can be booted on this machine, or ``None`` if one can."""
    if os.geteuid() != 0:
        return "systemd-nspawn needs root (mounts, namespaces)"
    if not shutil.which("systemd-nspawn"):
        return "systemd-nspawn is not installed (Debian package systemd-container; scripts/bootstrap.sh installs it)"
    if not SYSTEMD.exists():
        return f"{SYSTEMD} is missing: no systemd to boot"
    if not shutil.which("nsenter"):
        return "nsenter (util-linux) is not installed"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    return None


class BootFailed(RuntimeError):
    """The container did not boot (the message holds nspawn's output)."""


class Container:
    """One booted container; use as a context manager.

    ``base``: an empty host directory (a tmpfs is mounted on it); ``name``:
    the machine name (default ``swarmd-e2e-<pid>``); ``binds``: ``(host_path, container_path)`` pairs bound
    read-only.  :attr:`root` is the container's ``/`` as seen from the host
    (write files there before or after boot).
    """

    def __init__(self, base: Path, name: str | None = None, binds: list[tuple[Path, str]] = ()):
        # unique per process: nspawn keeps /run/systemd/nspawn/propagate/<name> while it runs
        self.base, self.name, self.binds = Path(base), name or f"swarmd-e2e-{os.getpid()}", list(binds)
        self.root = self.base / "root"
        self.proc: subprocess.Popen | None = None
        self.leader: int | None = None
        self._mounted: list[Path] = []
        self.log_path = self.base.parent / f"{name}.console.log"

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        """Mount the tmpfs and the overlay (``/`` below, the tmpfs above)."""
        self.base.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(self.base)])
        self._mounted.append(self.base)
        for d in ("upper", "work", "root"):
            (self.base / d).mkdir()
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir=/,upperdir={self.base / 'upper'},workdir={self.base / 'work'}", str(self.root)])
        self._mounted.append(self.root)

    def boot(self, timeout_s: float = 60) -> float:
        """Boot systemd; return the seconds until ``systemctl is-system-running`` settled.

        Raises :class:`BootFailed` if nspawn exits or the system does not settle
        within ``timeout_s`` seconds.
        """
        t0 = time.monotonic()
        cmd = ["systemd-nspawn", "-D", str(self.root), "--boot", "-M", self.name, "--register=no",
               "--keep-unit", "--private-network", "--console=passive", "--link-journal=no",
               "--resolv-conf=off", "--timezone=off"]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in self.binds]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = t0 + timeout_s
        while self.leader is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BootFailed(f"systemd-nspawn did not start systemd: {self.console()[-3000:]}")
            children = _children(self.proc.pid)
            if children:
                self.leader = children[0]
            else:
                time.sleep(0.05)
        while True:
            state = self.run("systemctl is-system-running --wait", check=False, timeout=timeout_s).stdout.strip()
            if state in ("running", "degraded"):
                return time.monotonic() - t0
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BootFailed(f"system state {state!r}; console: {self.console()[-3000:]}")
            time.sleep(0.2)

    def console(self) -> str:
        """What nspawn and the container's console printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Halt the container (SIGTERM to nspawn, SIGKILL after 20 s) and unmount everything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=LONG_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=LONG_S)
        for path in reversed(self._mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self._mounted.clear()

    def __enter__(self) -> "Container":
        try:
            self.prepare()
            self.boot()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ inside
    def nsenter(self, *namespaces: str) -> list[str]:
        """``nsenter`` argv entering the container's ``namespaces`` (default: all)."""
        flags = [f"--{ns}" for ns in namespaces] if namespaces else ["--all"]
        return ["nsenter", "-t", str(self.leader), *flags]

    def run(self, script: str, *, check: bool = True, timeout: float = 120, user: str | None = None,
            env: dict | None = None, host_network: bool = False) -> subprocess.CompletedProcess:
        """Run ``script`` with ``/bin/sh -c`` inside the container as root (or ``user``),
        with the system's PATH and no other environment than ``env``.
        ``host_network``: in the host's network namespace instead of the
        container's (e.g. for pip to reach the package index).

        Returns the completed process (text ``stdout``/``stderr``); with
        ``check`` raises ``AssertionError`` with both on a non-zero exit.
        """
        base_env = {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8", "SYSTEMD_PAGER": "",
                    "SYSTEMD_COLORS": "0", **(env or {})}
        argv = ["/bin/sh", "-c", script]
        if user:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] + argv
        namespaces = ("mount", "uts", "ipc", "pid", "cgroup") if host_network else ()
        full = self.nsenter(*namespaces) + ["env", "-i", *[f"{k}={v}" for k, v in base_env.items()], *argv]
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"in the container, `{script}` exited {r.returncode}\n"
                                 f"stdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}")
        return r

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` properties of ``unit`` as a dict."""
        out = self.run(f"systemctl show {shlex.quote(unit)} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, since: str | None = None) -> str:
        """The unit's journal (``-o cat``), optionally since a ``journalctl --since`` time."""
        extra = f" --since {shlex.quote(since)}" if since else ""
        return self.run(f"journalctl --no-pager -o cat -u {shlex.quote(unit)}{extra}", check=False).stdout

    def path(self, inside: str) -> Path:
        """Host path of the container path ``inside``."""
        return self.root / inside.lstrip("/")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise BootFailed(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
