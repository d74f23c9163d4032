"""Running tool actions, only after the governor said ``allow``.

:func:`run_tool` runs one action and returns a :class:`ToolResult`.  Shell: one plain
simple command runs as an argv list with no shell; anything else runs with
``/bin/bash --noprofile --norc -c LINE``, reached only when every simple command of the
line was judged ``allow``.  Every command runs inside the bubblewrap sandbox of
:mod:`.sandbox`, in the workspace, with a scrubbed environment (:func:`scrubbed_env`),
``stdin`` from ``/dev/null``, a new session (the group is killed on timeout), rlimits, a
write cap (``sandbox.write_cap_mb``) and output truncated at
``execution.max_output_bytes``.  Without a working bubblewrap only commands harmless by
construction run, unconfined (``ToolResult.confinement == "rlimits"``).

``read_file``/``write_file`` run in Python on the resolved path, re-checked to be inside
the workspace; ``http_get`` connects only to addresses the governor checked and re-checks
every redirect hop (:meth:`Governor.check_redirect`).  Design: docs/design.md.
"""

from __future__ import annotations

import dataclasses
import glob as globmod
import http.client
import os
import re
import resource
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

from .governor import Governor, Judgement
from .paths import inside
from .policy import Decision, ExecutionPolicy, Policy
from .sandbox import SANDBOX_HOME, Confinement, bwrap_argv, probe, workspace_masks
from .urls import redirect_target, resolve_checked

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


def _preexec(limits: ExecutionPolicy, open_files: int = 1024):  # noqa: ANN202 - returns the preexec callable
    cpu = int(limits.cpu_s)
    mem = int(limits.memory_mb) * 1024 * 1024
    fsize = int(limits.file_size_mb) * 1024 * 1024
    nproc = int(limits.max_processes)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    return apply


def _private_home(conf: Confinement) -> tuple[str, str | None]:
    """HOME for one command: the sandbox's own, or (unconfined) a fresh temporary
    directory that is removed afterwards (returned second)."""
    if conf.available:
        return SANDBOX_HOME, None
    tmp = tempfile.mkdtemp(prefix="swarmd-home-")
    return tmp, tmp


def run_argv(argv: list[str], workspace: str, limits: ExecutionPolicy, decision: Decision, *,
             policy: Policy | None = None, confinement: Confinement | None = None,
             proxy_socket: str | None = None) -> ToolResult:
    """Run ``argv`` (no shell is added here) in ``workspace`` (a real path) with
    the scrubbed environment, rlimits, timeout, output cap and write cap;
    inside bubblewrap when ``confinement`` (default :func:`sandbox.probe`) is
    available, laid out by ``policy.sandbox`` (default: the built-in defaults;
    with ``sandbox.network`` the network goes through ``proxy_socket``, by
    default the process's shared :mod:`.netproxy` for ``policy``).

    Returns a :class:`ToolResult` (``ran=True``). Does NOT consult the governor:
    callers must only pass argv that was judged ``allow`` (use :func:`run_tool`).
    """
    conf = confinement if confinement is not None else probe()
    pol = policy if policy is not None else _DEFAULT_POLICY
    home, tmp_home = _private_home(conf)
    if conf.available:
        full = bwrap_argv(conf, workspace, pol, workspace_masks(workspace, pol), proxy_socket=proxy_socket) + argv
    else:
        full = argv
    logger.info("governor exec confinement={} argv0={}", conf.kind, argv[0])
    try:
        return _run(full, argv[0], workspace, home, limits, pol, decision, conf)
    finally:
        if tmp_home:
            shutil.rmtree(tmp_home, ignore_errors=True)


def _run(full: list[str], name: str, workspace: str, home: str, limits: ExecutionPolicy, pol: Policy,
         decision: Decision, conf: Confinement) -> ToolResult:
    confinement = "bwrap" if conf.available else "rlimits"
    try:
        proc = subprocess.Popen(full, cwd=workspace, env=scrubbed_env(workspace, home=home),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                preexec_fn=_preexec(limits, pol.sandbox.open_files))
    except OSError as e:
        return ToolResult(decision, ran=True, exit_code=127, output="", confinement=confinement,
                          error=f"cannot start {name!r}: {e.strerror or e}")
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
    watch = _WriteCap(workspace, pol.sandbox.write_cap_mb * 1024 * 1024, proc.pid)
    timed_out = False
    try:
        code = proc.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
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
        error = f"stopped: wrote more than sandbox.write_cap_mb={pol.sandbox.write_cap_mb} MiB"
    return ToolResult(decision, ran=True, exit_code=code, output=out, truncated=state["truncated"],
                      timed_out=timed_out, confinement=confinement, error=error)


class _WriteCap:
    """Kills process group ``pgid`` once the filesystem holding ``path`` has
    lost more than ``cap`` bytes of free space since the start (checked every
    :data:`WRITE_CAP_POLL_S` seconds with ``statvfs``: cheap, and it counts
    every file however many there are). Other writers on the same filesystem
    count too, so the cap errs on the side of stopping."""

    def __init__(self, path: str, cap: int, pgid: int):
        self.path, self.cap, self.pgid = path, cap, pgid
        self.tripped = False
        self._stop = threading.Event()
        self._start = self._free()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _free(self) -> int:
        try:
            st = os.statvfs(self.path)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    def _loop(self) -> None:
        while not self._stop.wait(WRITE_CAP_POLL_S):
            if self._start - self._free() > self.cap:
                self.tripped = True
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
    root = j.root or "/"
    if j.parsed is not None and j.parsed.plain is not None:
        argv: list[str] = []
        for w in j.parsed.plain:
            text = home + w.text[1:] if w.tilde and (w.text == "~" or w.text.startswith("~/")) else w.text
            if w.glob and argv:
                matches = sorted(globmod.glob(text, root_dir=root) if not text.startswith("/") else globmod.glob(text))
                argv.extend(matches or [text])
            else:
                argv.append(text)
        return argv
    sh = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    return [sh, "--noprofile", "--norc", "-c", command] if sh.endswith("bash") else [sh, "-c", command]


def _open_checked(real: str, root: str, flags: int, *, outside_ok: bool = False) -> int:
    fd = os.open(real, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        actual = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else real
    except OSError:
        actual = real
    if not (inside(actual, root) or (outside_ok and actual == real)):
        os.close(fd)
        raise PermissionError(f"{real} moved outside the workspace")
    return fd


def _read_file(j: Judgement, limits: ExecutionPolicy) -> ToolResult:
    assert j.real_path and j.root
    # a path outside the workspace was allowed only because files.read_outside_workspace lists it
    outside_ok = j.decision.rule == "files.read_outside_workspace" and not inside(j.real_path, j.root)
    fd = _open_checked(j.real_path, j.root, os.O_RDONLY, outside_ok=outside_ok)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limits.max_output_bytes + 1)
    return ToolResult(j.decision, ran=True, exit_code=0, output=data[:limits.max_output_bytes].decode(
        "utf-8", errors="replace"), truncated=len(data) > limits.max_output_bytes, confinement="python")


def _write_file(j: Judgement, content: str) -> ToolResult:
    assert j.real_path and j.root
    parent = os.path.dirname(j.real_path)
    if not inside(os.path.realpath(parent), j.root):
        raise PermissionError("parent directory outside the workspace")
    os.makedirs(parent, exist_ok=True)
    fd = _open_checked(j.real_path, j.root, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(content.encode("utf-8"))
    return ToolResult(j.decision, ran=True, exit_code=0, output="", confinement="python")


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


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
        cls = _PinnedHTTPS if v.scheme == "https" else _PinnedHTTP
        conn = cls(v.host, v.port, v.ips[0], limits.http_timeout_s)
        try:
            conn.request("GET", target, headers={"User-Agent": "swarmd-governor/1", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            body = resp.read(limits.max_output_bytes + 1)
            status, location = resp.status, resp.getheader("Location")
        finally:
            conn.close()
        if status in (301, 302, 303, 307, 308) and location:
            hop = gov.check_redirect(url, location, objective_id=objective_id)
            if hop.decision != "allow":
                return ToolResult(hop, ran=True, exit_code=status, confinement="python",
                                  error=f"redirect to {location[:200]!r} refused: {hop.rule}: {hop.reason}")
            url = redirect_target(url, location)
            j = gov.judge("http_get", {"url": url}, "/")
            if j.decision.decision != "allow":
                return ToolResult(j.decision, ran=True, exit_code=status, confinement="python",
                                  error="redirect target refused on re-check")
            continue
        return ToolResult(first, ran=True, exit_code=status,
                          output=body[:limits.max_output_bytes].decode("utf-8", errors="replace"),
                          truncated=len(body) > limits.max_output_bytes, confinement="python")
    return ToolResult(first, ran=True, confinement="python", error="too many redirects")


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
                           policy=gov.policy, confinement=conf)
        elif tool == "read_file":
            res = _read_file(j, limits)
        elif tool == "write_file":
            res = _write_file(j, args["content"])
        else:
            res = _http_get(gov, j, args["url"], limits, objective_id)
    except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as e:
        res = ToolResult(j.decision, ran=True, confinement="python", error=f"{type(e).__name__}: {e}")
    logger.debug("governor ran {} in {:.1f} ms", tool, (time.monotonic() - started) * 1000)
    return res
