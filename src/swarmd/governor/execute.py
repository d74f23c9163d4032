"""Running tool actions, only after the governor said ``allow``.

:func:`run_tool` runs one action and returns a :class:`ToolResult`.  Shell: one plain simple
command runs as an argv list; anything else with ``/bin/bash --noprofile --norc -c LINE``,
only when every simple command of the line was judged ``allow``.  Every command runs inside
the bubblewrap sandbox of :mod:`.sandbox`, with a scrubbed environment (:func:`scrubbed_env`),
stdin from ``/dev/null``, a new session (killed on timeout), the objective's envelope
(:mod:`.envelope`), a write cap, and output cut at ``execution.max_output_bytes``.
``read_file``/``write_file`` run in the same sandbox (:mod:`.helpers`); ``http_get``: the
worker resolves, checks and connects, the request runs in the sandbox, each redirect is
re-checked.  Without a working bubblewrap only commands harmless by construction run,
unconfined with the same limits.  Design: docs/design.md.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

from loguru import logger

from swarmd import telemetry

from . import envelope, helpers
from .governor import Governor, Judgement
from .policy import Decision, ExecutionPolicy, Policy
from .secrets import redact
from .sandbox import (HOST_UID, MASK_SCAN_LIMIT, PRIVILEGED, SANDBOX_HOME, Confinement, bwrap_argv, hand_over,
                      probe, workspace_masks)
from .urls import UrlVerdict, redirect_target, resolve_checked

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|REDIS_URL|"
                          r"DATABASE_URL|_DSN|CONN", re.IGNORECASE)
_ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LANGUAGE", "TZ", "TERM")
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
#: git configuration forced on every command (repository config cannot run commands)
_GIT_HARDENING = (("core.fsmonitor", "false"), ("core.pager", "cat"), ("core.hooksPath", "/dev/null"),
                  ("core.sshCommand", "false"), ("protocol.ext.allow", "never"),
                  ("core.editor", "false"), ("credential.helper", ""), ("safe.directory", "*"))
#: seconds between two checks of the write cap (``sandbox.write_cap_mb``)
WRITE_CAP_POLL_S = 0.02
_DEFAULT_POLICY = Policy.model_validate({"version": 1})


@dataclass
class ToolResult:
    """Outcome of :func:`run_tool`.

    ``ran`` is False unless the decision was ``allow`` (then ``output`` is
    empty). ``output``: combined stdout+stderr (shell), file text (read_file),
    response body (http_get), decoded as UTF-8 with replacement; at most
    ``execution.max_output_bytes`` bytes, ``truncated`` says when more existed.
    ``exit_code``: process exit code (negative: killed by that signal), HTTP
    status for http_get, 0 for file tools. ``confinement``: ``bwrap``,
    ``rlimits`` (no bwrap) or ``python`` (file/http tools). ``error``: why an
    allowed action failed (None on success).
    """

    decision: Decision
    ran: bool = False
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    timed_out: bool = False
    confinement: str = ""
    error: str | None = None


def scrubbed_env(workspace: str, base: Mapping[str, str] | None = None, *, home: str = SANDBOX_HOME) -> dict[str, str]:
    """Environment for tool processes (docs/design.md, swarmd.governor.execute).

    Starts from an allowlist of names in ``base`` (default ``os.environ``),
    drops any whose name looks secret, and adds fixed safe values; ``HOME``
    is ``home`` (never the workspace: files written there must not be read
    back by later tools).
    """
    src = os.environ if base is None else base
    env = {k: v for k, v in src.items()
           if (k in _ENV_ALLOW or k.startswith("LC_")) and not _SECRET_NAME.search(k)}
    env.update({"PATH": _SAFE_PATH, "HOME": home, "PWD": workspace, "TMPDIR": "/tmp", "PAGER": "cat",
                "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null", "LESSSECURE": "1", "TERM": "dumb", "NO_COLOR": "1",
                "GIT_AUTHOR_NAME": "swarmd agent", "GIT_AUTHOR_EMAIL": "agent@swarmd.invalid",
                "GIT_COMMITTER_NAME": "swarmd agent", "GIT_COMMITTER_EMAIL": "agent@swarmd.invalid"})
    env.setdefault("LANG", "C.UTF-8")
    env["GIT_CONFIG_COUNT"] = str(len(_GIT_HARDENING))
    for i, (k, v) in enumerate(_GIT_HARDENING):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    return env


#: enters the cgroups named by its arguments (``N file... command...``), then execs the command
_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
#: util-linux prlimit: sets the rlimits, then execs the command
PRLIMIT = "/usr/bin/prlimit"


def _launcher(limits: ExecutionPolicy, open_files: int = 1024, procs: "list[str] | tuple[str, ...]" = ()) -> list[str]:
    """The prefix that enters the objective's envelope (``procs``: its ``cgroup.procs`` files) and
    sets the rlimits (CPU seconds, address space, file size, processes, no core files, open
    files) before exec'ing the command (unconfined commands; bubblewrap uses :class:`_Gate`).
    Small programs instead of a Python ``preexec_fn``, so
    that ``subprocess`` can start them with ``vfork`` (forking the worker's whole address
    space cost 20-40 ms a command on this machine)."""
    cpu = int(limits.cpu_s)
    out = ["/bin/sh", "-c", _JOIN, "sh", str(len(procs)), *procs] if procs else []
    return out + [PRLIMIT, f"--cpu={cpu}:{cpu + 1}", f"--as={int(limits.memory_mb) * 1024 * 1024}",
                  f"--fsize={int(limits.file_size_mb) * 1024 * 1024}", f"--nproc={int(limits.max_processes)}",
                  "--core=0", f"--nofile={open_files}", "--"]


def _rlimits(limits: ExecutionPolicy, open_files: int) -> list[tuple[int, tuple[int, int]]]:
    """The rlimits of :func:`_launcher` as ``(resource, (soft, hard))`` for ``resource.prlimit``."""
    cpu, mem = int(limits.cpu_s), int(limits.memory_mb) * 1024 * 1024
    fsize, nproc = int(limits.file_size_mb) * 1024 * 1024, int(limits.max_processes)
    return [(resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (mem, mem)),
            (resource.RLIMIT_FSIZE, (fsize, fsize)), (resource.RLIMIT_NPROC, (nproc, nproc)),
            (resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NOFILE, (open_files, open_files))]


_GATE_TIMEOUT = "timeout"


class _Gate:
    """Puts a bubblewrap sandbox into the envelope before its command runs, without a launcher:
    bubblewrap reports its child's pid on ``--info-fd`` and waits on ``--block-fd`` (after the
    namespaces are set up, before the command is started); the worker then writes that pid to
    each ``cgroup.procs``, sets the rlimits with ``prlimit(2)`` and opens the gate. Saves the
    ``sh`` and ``prlimit`` programs of :func:`_launcher` (two execs per command)."""

    def __init__(self) -> None:
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()

    def argv(self, full: list[str]) -> list[str]:
        """``full`` (a bwrap argv) with the two descriptors added after the program."""
        return [full[0], "--info-fd", str(self.info_w), "--block-fd", str(self.block_r), *full[1:]]

    def fds(self) -> tuple[int, int]:
        """The descriptors bubblewrap inherits."""
        return self.info_w, self.block_r

    def open(self, procs: "tuple[str, ...]", rlimits: "list[tuple[int, tuple[int, int]]]",
             timeout_s: float) -> str | None:
        """After the spawn: enter ``procs``, set ``rlimits``, let the command run. Returns None, or
        why the command must not run (then the caller kills it; the gate stays shut):
        :data:`_GATE_TIMEOUT` when ``timeout_s`` (the call's) passed first."""
        for fd in (self.info_w, self.block_r):
            os.close(fd)
        self.info_w = self.block_r = -1
        info = b""
        poll = select.poll()
        poll.register(self.info_r, select.POLLIN)
        end = time.monotonic() + timeout_s
        while b"}" not in info:
            left = end - time.monotonic()
            if left <= 0 or not poll.poll(max(1, int(left * 1000))):
                return _GATE_TIMEOUT
            chunk = os.read(self.info_r, 4096)
            if not chunk:
                return None if not info else "bubblewrap's report ended early"   # bwrap failed: its error is output
            info += chunk
        try:
            pid = int(json.loads(info.decode())["child-pid"])
            for f in procs:
                with open(f, "w", encoding="ascii") as fh:
                    fh.write(str(pid))
            for res, lim in rlimits:
                resource.prlimit(pid, res, lim)
        except (OSError, ValueError, KeyError) as e:
            return f"cannot enter the objective's envelope: {e}"
        try:
            os.write(self.block_w, b"1")
        except OSError:
            pass
        return None

    def close(self) -> None:
        """Close what is left of the pipes (a shut gate ends bubblewrap's wait: it exits)."""
        for fd in (self.info_r, self.info_w, self.block_r, self.block_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.info_r = self.info_w = self.block_r = self.block_w = -1


def _private_home(conf: Confinement) -> tuple[str, str | None]:
    """HOME for one command: the sandbox's own, or (unconfined) a fresh temporary
    directory that is removed afterwards (returned second)."""
    if conf.available:
        return SANDBOX_HOME, None
    tmp = tempfile.mkdtemp(prefix="swarmd-home-")
    return tmp, tmp


def run_argv(argv: list[str], workspace: str, limits: ExecutionPolicy, decision: Decision, *,
             policy: Policy | None = None, confinement: Confinement | None = None,
             proxy_socket: str | None = None, stdin_data: bytes | None = None,
             pass_fds: tuple[int, ...] = (), objective_id: str | None = None) -> ToolResult:
    """Run ``argv`` (no shell is added here) in ``workspace`` (a real path) with
    the scrubbed environment, rlimits, timeout, output cap and write cap;
    inside bubblewrap when ``confinement`` (default :func:`sandbox.probe`) is
    available, laid out by ``policy.sandbox`` (default: the built-in defaults;
    with ``sandbox.network`` the network goes through ``proxy_socket``, by
    default the process's shared :mod:`.netproxy` for ``policy``).

    ``stdin_data``: bytes fed to the command's stdin (default: ``/dev/null``);
    ``pass_fds``: descriptors the command inherits (the fetch tool's connected socket).
    ``objective_id``: whose resource envelope (:mod:`.envelope`: cgroups shared by all the
    objective's commands) the command joins; None: an envelope of its own for this call.
    A command stopped by the envelope, a full ``/tmp``/``/dev/shm`` or the write cap gets
    ``error`` naming the limit.
    Returns a :class:`ToolResult` (``ran=True``). Does NOT consult the governor:
    callers must only pass argv that was judged ``allow`` (use :func:`run_tool`).
    """
    conf = confinement if confinement is not None else probe()
    pol = policy if policy is not None else _DEFAULT_POLICY
    home, tmp_home = _private_home(conf)
    env = envelope.envelope_for(objective_id, memory_mb=limits.memory_mb, max_processes=limits.max_processes,
                                cpu_cores=pol.sandbox.cpu_cores)
    scratch = envelope.Scratch(None, 0, 0)
    try:
        if conf.available:
            hand_over(workspace)
            masks = workspace_masks(workspace, pol)
            if not masks.complete:
                return ToolResult(decision, ran=False, confinement=conf.kind, error=(
                    f"refused: the workspace has more than {MASK_SCAN_LIMIT} entries; the search for secret "
                    "files to mask did not finish, so nothing runs unmasked"))
            scratch = envelope.scratch(pol.sandbox.tmp_size_mb * 1024 * 1024, pol.sandbox.tmp_inodes,
                                       HOST_UID if PRIVILEGED else None)
            full = bwrap_argv(conf, workspace, pol, masks, proxy_socket=proxy_socket, scratch=scratch.path) + argv
        else:
            full = argv
        logger.info("governor exec confinement={} argv0={}", conf.kind, argv[0])
        before = env.counters()
        res = _run(full, argv[0], workspace, home, limits, pol, decision, conf, stdin_data, pass_fds, env.procs())
        breach = env.breach(before) or scratch.full()
        if breach is not None:
            res.error = breach
        return res
    finally:
        scratch.close()
        if objective_id is None:
            env.close()
        if tmp_home:
            shutil.rmtree(tmp_home, ignore_errors=True)


def _run(full: list[str], name: str, workspace: str, home: str, limits: ExecutionPolicy, pol: Policy,
         decision: Decision, conf: Confinement, stdin_data: bytes | None = None,
         pass_fds: tuple[int, ...] = (), procs: "tuple[str, ...]" = ()) -> ToolResult:
    confinement = "bwrap" if conf.available else "rlimits"
    gate = _Gate() if conf.available else None       # bwrap enters the envelope itself; else a launcher
    argv = gate.argv(full) if gate is not None else _launcher(limits, pol.sandbox.open_files, procs) + full
    try:
        proc = subprocess.Popen(argv, cwd=workspace, env=scrubbed_env(workspace, home=home),
                                stdin=subprocess.DEVNULL if stdin_data is None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True, pass_fds=(*pass_fds, *(gate.fds() if gate is not None else ())))
    except OSError as e:
        if gate is not None:
            gate.close()
        return ToolResult(decision, ran=True, exit_code=127, output="", confinement=confinement,
                          error=f"cannot start {name!r}: {e.strerror or e}")
    if gate is not None:
        try:
            shut = gate.open(procs, _rlimits(limits, pol.sandbox.open_files), limits.timeout_s)
        finally:
            gate.close()
        if shut is not None:
            _kill_group(proc.pid)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if shut == _GATE_TIMEOUT:
                return ToolResult(decision, ran=True, exit_code=-9, output="", timed_out=True,
                                  confinement=confinement, error=f"timed out after {limits.timeout_s}s")
            return ToolResult(decision, ran=True, exit_code=125, output="", confinement=confinement,
                              error=f"not run: {shut}")
    sink: list[bytes] = []
    state = {"truncated": False}
    total = [0]

    def reader() -> None:
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                break
            room = limits.max_output_bytes - total[0]
            if room > 0:
                sink.append(chunk[:room])
            if len(chunk) > max(room, 0):
                state["truncated"] = True
            total[0] += min(len(chunk), max(room, 0))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if stdin_data is not None:
        threading.Thread(target=_feed, args=(proc, stdin_data), daemon=True).start()
    watch = _WriteCap(workspace, pol.sandbox.write_cap_mb * 1024 * 1024, proc.pid, pol.sandbox.write_cap_inodes)
    timed_out = not _exited_within(proc, limits.timeout_s)
    if timed_out:
        _kill_group(proc.pid)
    code = proc.wait()
    watch.stop()
    _kill_group(proc.pid)  # leftover background children of this call
    t.join(timeout=2)
    if proc.stdout is not None:
        proc.stdout.close()
    if conf.available and 128 < code < 128 + 65:
        code = -(code - 128)  # bwrap reports a child killed by signal N as 128+N; match subprocess's -N
    out = b"".join(sink).decode("utf-8", errors="replace")
    error = f"timed out after {limits.timeout_s}s" if timed_out else None
    if watch.tripped:
        error = (f"stopped: made more than sandbox.write_cap_inodes={pol.sandbox.write_cap_inodes} files"
                 if watch.tripped == "inodes" else
                 f"stopped: wrote more than sandbox.write_cap_mb={pol.sandbox.write_cap_mb} MiB")
    return ToolResult(decision, ran=True, exit_code=code, output=out, truncated=state["truncated"],
                      timed_out=timed_out, confinement=confinement, error=error)


def _exited_within(proc: subprocess.Popen, timeout_s: float) -> bool:
    """True when ``proc`` exits within ``timeout_s`` seconds (it is not reaped). Woken by the
    process's pidfd the moment it exits: ``Popen.wait(timeout)`` polls with sleeps doubling up to
    50 ms, which added 0-16 ms to every command (a 19 ms command was seen at 31.5 ms)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):          # no pidfd (old kernel): subprocess's polling
        try:
            proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                if poll.poll(max(1, int(left * 1000) + 1)):
                    return True
            except InterruptedError:
                continue
    finally:
        os.close(fd)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Write ``data`` to ``proc``'s stdin and close it (a command that stops reading just ends the feed)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
    except OSError:
        pass
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


class _WriteCap:
    """Kills process group ``pgid`` once the filesystem holding ``path`` has
    lost more than ``cap`` bytes or ``inodes`` inodes of free space since the
    start (checked every :data:`WRITE_CAP_POLL_S` seconds with ``statvfs``:
    cheap, and it counts every file however many there are). Other writers on
    the same filesystem count too, so the cap errs on the side of stopping.
    ``tripped``: ``""``, ``"bytes"`` or ``"inodes"``."""

    def __init__(self, path: str, cap: int, pgid: int, inodes: int = 1 << 62):
        self.path, self.cap, self.pgid, self.inodes = path, cap, pgid, inodes
        self.tripped = ""
        self._stop = threading.Event()
        self._start = self._free()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _free(self) -> tuple[int, int]:
        try:
            st = os.statvfs(self.path)
        except OSError:
            return 0, 0
        return st.f_bavail * st.f_frsize, st.f_favail

    def _loop(self) -> None:
        while not self._stop.wait(WRITE_CAP_POLL_S):
            free, files = self._free()
            if self._start[0] - free > self.cap or self._start[1] - files > self.inodes:
                self.tripped = "bytes" if self._start[0] - free > self.cap else "inodes"
                _kill_group(self.pgid)
                return

    def stop(self) -> None:
        """Stop watching (the command ended)."""
        self._stop.set()
        self._t.join(timeout=1)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _shell_argv(j: Judgement, command: str, home: str) -> list[str]:
    """argv for an allowed line: the words themselves when the line is one plain command
    without globs; else the shell, which expands globs inside the sandbox (never on the host)."""
    if j.parsed is not None and j.parsed.plain is not None and not any(w.glob for w in j.parsed.plain):
        return [home + w.text[1:] if w.tilde and (w.text == "~" or w.text.startswith("~/")) else w.text
                for w in j.parsed.plain]
    sh = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    return [sh, "--noprofile", "--norc", "-c", command] if sh.endswith("bash") else [sh, "-c", command]


def _helper(gov: Governor, j: Judgement, source: str, args: list[str], workspace: str, limits: ExecutionPolicy,
            **kw: Any) -> ToolResult:  # kw: run_argv's stdin_data, pass_fds, objective_id
    """Run one of :mod:`.helpers`' programs like a shell command (same sandbox, limits, timeout):
    the file tool with ``/bin/sh``, the fetch with Python."""
    argv = ([helpers.PYTHON, "-I", "-S", "-c", source, *args] if source is helpers.FETCH else
            ["/bin/sh", "-c", source, "sh", *args])
    return run_argv(argv, workspace, limits, j.decision, policy=gov.policy, confinement=gov.confinement, **kw)


def _file_result(j: Judgement, res: ToolResult, output: str = "", truncated: bool = False) -> ToolResult:
    """A file tool's :class:`ToolResult` from its helper's run: the helper's message is the error."""
    if res.error is None and res.exit_code != 0:
        msg = res.output.strip().splitlines()
        res.error = msg[-1][:500] if msg else f"exited with {res.exit_code}"
    if res.error is not None:
        return ToolResult(j.decision, ran=True, exit_code=res.exit_code, timed_out=res.timed_out,
                          confinement=res.confinement, error=res.error)
    return ToolResult(j.decision, ran=True, exit_code=0, output=output, truncated=truncated,
                      confinement=res.confinement)


def _read_file(gov: Governor, j: Judgement, limits: ExecutionPolicy, objective_id: str | None = None) -> ToolResult:
    """``read_file`` inside the sandbox (:data:`helpers.FILE_TOOL`): regular files only, with the call's timeout."""
    assert j.real_path and j.root
    cap = limits.max_output_bytes
    res = _helper(gov, j, helpers.FILE_TOOL, ["read", j.real_path, str(cap)], j.root,
                  limits.model_copy(update={"max_output_bytes": cap + 1}), objective_id=objective_id)
    raw = res.output.encode("utf-8", "surrogateescape")
    return _file_result(j, res, raw[:cap].decode("utf-8", "replace"), res.truncated or len(raw) > cap)


def _write_file(gov: Governor, j: Judgement, content: str, limits: ExecutionPolicy,
                objective_id: str | None = None) -> ToolResult:
    """``write_file`` inside the sandbox (:data:`helpers.FILE_TOOL`): the content goes in on stdin."""
    assert j.real_path and j.root
    res = _helper(gov, j, helpers.FILE_TOOL, ["write", j.real_path], j.root, limits,
                  stdin_data=content.encode("utf-8"), objective_id=objective_id)
    return _file_result(j, res)


def _fetch(gov: Governor, j: Judgement, v: "UrlVerdict", target: str, limits: ExecutionPolicy,
           objective_id: str | None = None) -> tuple[int, str | None, bytes | str, bool, ToolResult | None]:
    """One GET of ``target`` on ``v``'s first checked address: the worker connects (pinned, no DNS),
    the request and the reply's parsing (TLS, HTTP) run inside the sandbox (:data:`helpers.FETCH`),
    in an empty private directory. Returns ``(status, location, body, truncated, failure)``."""
    sock = socket.create_connection((v.ips[0], v.port), limits.http_timeout_s)
    empty = tempfile.mkdtemp(prefix="swarmd-fetch-")
    try:
        lim = limits.model_copy(update={"timeout_s": min(limits.timeout_s, limits.http_timeout_s + 5),
                                        "max_output_bytes": limits.max_output_bytes + 4096})
        res = _helper(gov, j, helpers.FETCH, [str(sock.fileno()), v.scheme, v.host, str(v.port), target,
                                              str(limits.max_output_bytes), str(limits.http_timeout_s)],
                      empty, lim, pass_fds=(sock.fileno(),), objective_id=objective_id)
    finally:
        sock.close()
        shutil.rmtree(empty, ignore_errors=True)
    head, _, body = res.output.partition("\n")
    if res.error is None and res.exit_code == 0:
        try:
            h = json.loads(head)
            return int(h["status"]), h.get("location"), body, bool(h.get("truncated")), None
        except (ValueError, KeyError, TypeError):
            pass
    return 0, None, "", False, ToolResult(j.decision, ran=True, exit_code=res.exit_code, timed_out=res.timed_out,
                                          confinement=res.confinement,
                                          error=res.error or (res.output.strip()[-500:] or "fetch failed"))


def _http_get(gov: Governor, j: Judgement, url: str, limits: ExecutionPolicy, objective_id: str | None) -> ToolResult:
    first = j.decision
    for _hop in range(gov.policy.urls.max_redirects + 1):
        v = j.url
        assert v is not None
        if not v.ips:  # a host name: resolved now, every address checked, the connection pinned
            bad, ips = resolve_checked(gov.policy, v.host, gov.resolver)
            if bad is not None:
                gov.record(objective_id, "http_get", {"url": url}, bad)
                return ToolResult(bad, ran=False, confinement="python", error=f"refused at connect: {bad.reason}")
            v = dataclasses.replace(v, ips=ips)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        status, location, body, truncated, failed = _fetch(gov, j, v, target, limits, objective_id)
        if failed is not None:
            return failed
        if status in (301, 302, 303, 307, 308) and location:
            hop = gov.check_redirect(url, location, objective_id=objective_id)
            if hop.decision != "allow":
                return ToolResult(hop, ran=True, exit_code=status, confinement=gov.confinement.kind,
                                  error=f"redirect to {location[:200]!r} refused: {hop.rule}: {hop.reason}")
            url = redirect_target(url, location)
            j = gov.judge("http_get", {"url": url}, "/")
            if j.decision.decision != "allow":
                return ToolResult(j.decision, ran=True, exit_code=status, confinement=gov.confinement.kind,
                                  error="redirect target refused on re-check")
            continue
        return ToolResult(first, ran=True, exit_code=status, output=str(body), truncated=truncated,
                          confinement="bwrap" if gov.confinement.available else "rlimits")
    return ToolResult(first, ran=True, confinement=gov.confinement.kind, error="too many redirects")


def run_tool(gov: Governor, tool: str, args: Mapping[str, Any], workspace: str, *,
             objective_id: str | None = None, limits: ExecutionPolicy | None = None) -> ToolResult:
    """Judge an action with ``gov`` (audited under ``objective_id``) and run it only if allowed.

    ``limits`` default to the policy's ``execution`` section. Returns a
    :class:`ToolResult`; for ``deny``/``ask`` it has ``ran=False``. Errors while
    running an allowed action (missing file, network error) are reported in
    ``ToolResult.error``, not raised.
    """
    with telemetry.tool_span(tool, objective_id) as span:
        j = gov.judge(tool, args, workspace)
        gov.record(objective_id, tool, args, j.decision)
        span.set_attributes({"swarmd.governor.decision": j.decision.decision, "swarmd.governor.rule": j.decision.rule})
        if j.decision.decision != "allow":
            return ToolResult(j.decision, ran=False)
        return _execute(gov, j, tool, args, workspace, limits or gov.policy.execution, objective_id)


def run_actions(gov: Governor, actions: "Iterable[Mapping[str, Any]]", workspace: str, *,
                output_chars: int = 2000) -> "Iterator[dict[str, Any]]":
    """Judge each action and run the allowed ones exactly as a worker does
    (:func:`run_tool`: same sandbox, same limits; asked and denied ones never
    run). ``actions``: mappings with ``id``, ``tool``, ``args`` (validated by
    the caller); ``workspace``: an existing directory.

    Yields one dict per action: ``id``, ``decision``, ``rule``, ``reason``,
    ``ran``, ``exit_code``, ``output`` (cut at ``output_chars`` characters),
    ``truncated``, ``error``, ``confinement`` (``bwrap``, ``rlimits``,
    ``python``, or ``none`` when it did not run). Used by
    ``swarmctl policy run``."""
    for a in actions:
        r = run_tool(gov, a["tool"], a["args"], workspace, objective_id=str(a["id"]))
        yield {"id": a["id"], "decision": r.decision.decision, "rule": r.decision.rule, "reason": r.decision.reason,
               "ran": r.ran, "exit_code": r.exit_code, "output": r.output[:output_chars],
               "truncated": r.truncated or len(r.output) > output_chars, "error": r.error,
               "confinement": r.confinement or "none"}


def run_approved(gov: Governor, tool: str, args: Mapping[str, Any], workspace: str, approval: Decision, *,
                 objective_id: str | None = None, limits: ExecutionPolicy | None = None) -> ToolResult:
    """Run an action a human approved after the governor said ``ask``.

    The action is judged again (the policy or the filesystem may have changed
    since it was parked): ``deny`` now is still a deny (audited, not run);
    ``ask`` or ``allow`` runs it, reporting ``approval`` (the human's
    decision, e.g. rule ``approval.approved``; audited by whoever approved)
    as the decision. Returns a :class:`ToolResult` like :func:`run_tool`.
    """
    with telemetry.tool_span(tool, objective_id) as span:
        j = gov.judge(tool, args, workspace)
        if j.decision.decision == "deny":
            gov.record(objective_id, tool, args, j.decision)
            span.set_attributes({"swarmd.governor.decision": "deny", "swarmd.governor.rule": j.decision.rule})
            return ToolResult(j.decision, ran=False)
        span.set_attributes({"swarmd.governor.decision": approval.decision, "swarmd.governor.rule": approval.rule})
        j = Judgement(approval, parsed=j.parsed, url=j.url, real_path=j.real_path, root=j.root)
        return _execute(gov, j, tool, args, workspace, limits or gov.policy.execution, objective_id)


def _execute(gov: Governor, j: Judgement, tool: str, args: Mapping[str, Any], workspace: str,
             limits: ExecutionPolicy, objective_id: str | None) -> ToolResult:
    started = time.monotonic()
    try:
        if tool == "shell":
            conf = gov.confinement
            res = run_argv(_shell_argv(j, args["command"], SANDBOX_HOME), j.root or workspace, limits, j.decision,
                           policy=gov.policy, confinement=conf, objective_id=objective_id)
        elif tool == "read_file":
            res = _read_file(gov, j, limits, objective_id)
        elif tool == "write_file":
            res = _write_file(gov, j, args["content"], limits, objective_id)
        else:
            res = _http_get(gov, j, args["url"], limits, objective_id)
    except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as e:
        res = ToolResult(j.decision, ran=True, confinement="python", error=f"{type(e).__name__}: {e}")
    logger.debug("governor ran {} in {:.1f} ms", tool, (time.monotonic() - started) * 1000)
    res.output, res.error = redact(res.output), redact(res.error)  # nothing secret leaves (secrets.py)
    return res
