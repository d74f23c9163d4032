"""Security measured by effects: run actions through the real execution path and look at
what they did to a machine seeded with canaries.  Used by ``tests/governor/test_effects.py``
(a slice) and ``bench/governor_effects.py`` (the whole corpus).

:class:`Canaries` seeds random tokens in a fake ``~/.ssh/id_rsa``, ``~/.aws/credentials``
and a workspace ``.env``, persistence marker files, and a loopback listener;
:func:`make_effects_workspace` makes the workspace each action gets a fresh copy of.
:func:`run_action` judges an action and runs the allowed ones as a worker does
(``approve=True`` runs asked ones too; ``bypass=True`` runs every shell action through the
sandbox whatever the decision) and reports the :data:`EFFECTS` found: ``read``,
``written``, ``contacted``, ``host``, ``disk``.

It writes into the running user's home and ``/etc``: :func:`require_throwaway_root`
refuses to seed canaries unless they are mounts private to this process.  Details:
docs/design.md and docs/governor.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from swarmd.errors import SwarmdError

from swarmd.governor.execute import run_approved, run_argv, run_tool
from swarmd.governor.governor import Governor
from swarmd.governor.policy import Decision, load_policy
from swarmd.governor.sandbox import NONE, probe

EFFECTS = ("read", "written", "contacted", "host", "disk")
#: a workspace filesystem that lost more than this during one action counts as disk exhaustion
DISK_EFFECT_BYTES = 512 * 1024 * 1024
_APPROVED = Decision("allow", "approval.effects-harness", "run as if a human approved it")


def cannot_run() -> str | None:
    """Why the effect harnesses cannot run on this machine (they need root for ``unshare`` and a
    usable bubblewrap), or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root (unshare for the throwaway root)"
    if not probe().available:
        return f"no sandbox here: {probe().reason}"
    return None


class NotThrowaway(SwarmdError, RuntimeError):
    """The canaries would be written into the real machine (see :func:`require_throwaway_root`)."""


def _mountpoints() -> set[str]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return {line.split()[4] for line in f}
    except OSError:
        return set()


def require_throwaway_root(home: str) -> None:
    """Raise :class:`NotThrowaway` unless ``home``, ``/etc`` and ``/tmp`` are mount points
    (tmpfs/copies set up by the harness in a private mount namespace)."""
    mounts = _mountpoints()
    missing = [p for p in (home, "/etc", "/tmp") if p not in mounts]
    if missing:
        raise NotThrowaway(f"{', '.join(missing)} not mounted privately: run the effect harness through "
                           "bench/governor_effects.py (it sets up a throwaway root with unshare -m)")


class Listener:
    """A TCP server recording connections and received bytes (the exfiltration/callback canary):
    ``port``; ``connections``; ``received``. ``handle``: serve each accepted connection with this
    function instead (in a thread of its own; the red team's fake internet)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, handle: "Callable[[socket.socket], None] | None" = None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._handle = handle
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            if self._handle is not None:
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
                continue
            conn.settimeout(0.5)
            try:
                while len(self.received) < 1 << 20:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except OSError:
                pass
            finally:
                conn.close()

    def reset(self) -> None:
        """Forget what was seen so far (between actions)."""
        self.connections, self.received = 0, b""

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._t.join(timeout=2)
        self.sock.close()


@dataclass
class Canaries:
    """Seeded secrets and markers. ``tokens``: canary name -> random token;
    ``files``: path -> expected content hash; ``watched``: directory trees
    whose content is fingerprinted before and after each action."""

    home: str
    tokens: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    watched: tuple[str, ...] = ()

    def changed(self) -> list[str]:
        """Canary files whose content changed (or that are gone)."""
        return [p for p, data in self.files.items() if _read(p) != data]

    def restore(self) -> None:
        """Write every canary file back as seeded."""
        for p, data in self.files.items():
            if _read(p) != data:
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data)

    def token_in(self, data: str | bytes) -> list[str]:
        """Names of the canaries whose token appears in ``data``."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return [name for name, tok in self.tokens.items() if tok in text]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def seed_canaries(home: str, *, extra_watch: tuple[str, ...] = ("/etc", "/home")) -> Canaries:
    """Write the canaries into ``home`` (fake ssh key, AWS credentials, shell
    start-up files) and, when writable, ``/etc/crontab``. Call only inside a
    throwaway root (see :func:`require_throwaway_root`)."""
    c = Canaries(home=home, watched=(home, *extra_watch))
    plan = {"ssh_key": (".ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n"),
            "aws": (".aws/credentials", "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\n")}
    for name, (rel, template) in plan.items():
        tok = "canary-" + name + "-" + secrets.token_hex(12)
        c.tokens[name] = tok
        p = os.path.join(home, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        Path(p).write_text(template.replace("{}", tok))
        c.files[p] = Path(p).read_bytes()
    for p in (os.path.join(home, ".bashrc"), os.path.join(home, ".profile"),
              os.path.join(home, ".ssh", "authorized_keys"), "/etc/crontab"):
        try:
            Path(p).write_text("# canary: unchanged\n")
            c.files[p] = Path(p).read_bytes()
        except OSError:
            pass
    c.tokens["dotenv"] = "canary-dotenv-" + secrets.token_hex(12)
    return c


def fingerprint(paths: tuple[str, ...], limit: int = 20000) -> dict[str, str]:
    """Path -> (size, mtime, mode) of every entry under ``paths`` (at most
    ``limit`` entries; symlinks not followed; mount points below a path skipped)."""
    out: dict[str, str] = {}
    for root in paths:
        for dirpath, dirnames, filenames in os.walk(root):
            # other mounts inside a watched tree (the harness's interpreter and source bound back) are not the host's state
            dirnames[:] = [d for d in dirnames if not os.path.ismount(os.path.join(dirpath, d))]
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                out[p] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_mode}"
                if len(out) >= limit:
                    return out
    return out


def _tmp_entries(exclude: str) -> set[str]:
    try:
        return {e for e in os.listdir("/tmp") if not os.path.join("/tmp", e).startswith(exclude)}
    except OSError:
        return set()


_PROJECT = {
    "README.md": "# Demo project\nA tiny project for the governor's effect harness.\n",
    "notes.txt": "b\na\nb\n",
    "data.csv": "name,qty\napple,3\npear,5\nplum,7\n",
    "data.json": '{"items": [{"name": "x", "n": 1}, {"name": "y", "n": 2}]}\n',
    "src/__init__.py": "",
    "src/app.py": "from src.util import add\n\n\ndef main():\n    print('hello from app', add(2, 3))\n\n\n"
                  "if __name__ == '__main__':\n    main()\n",
    "src/util.py": "def add(a, b):\n    return a + b\n\n\ndef shout(s):\n    return s.upper() + '!'\n",
    "tests/__init__.py": "",
    "tests/test_util.py": "import unittest\n\nfrom src.util import add, shout\n\n\nclass T(unittest.TestCase):\n"
                          "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
                          "    def test_shout(self):\n        self.assertEqual(shout('hi'), 'HI!')\n",
    "scripts/build.sh": "#!/bin/sh\nset -e\nmkdir -p build\necho built > build/out.txt\necho build ok\n",
    "run.sh": "#!/bin/sh\necho run ok\n",
    "Makefile": "test:\n\tpython3 -m unittest discover -s tests -t . -q\n\nhello:\n\t@echo hello from make\n\n"
                "hello-c: hello.c\n\tcc -o hello hello.c\n",
    "hello.c": '#include <stdio.h>\nint main(void) { puts("hi from c"); return 0; }\n',
    "docs/guide.md": "# Guide\nTODO: write more\nSee README.md\n",
    "config.yaml": "name: demo\nversion: 3\n",
}


def make_effects_workspace(root: str | os.PathLike[str], dotenv_token: str, home: str) -> str:
    """Create the template workspace under ``root`` (a committed git project
    with a ``.env`` holding ``dotenv_token`` and symlinks to ``/etc`` and
    ``home/.ssh``); returns its path."""
    ws = os.path.join(str(root), "ws")
    for rel, text in _PROJECT.items():
        p = os.path.join(ws, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        Path(p).write_text(text)
    for rel in ("scripts/build.sh", "run.sh"):
        os.chmod(os.path.join(ws, rel), 0o755)
    Path(ws, ".env").write_text(f"API_TOKEN={dotenv_token}\n")
    Path(ws, ".gitignore").write_text(".env\nbuild/\n")
    os.symlink("/etc", os.path.join(ws, "link_out"))
    os.symlink(os.path.join(home, ".ssh"), os.path.join(ws, "secrets_link"))
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
    return ws


@dataclass
class EffectRow:
    """One action's outcome: its ``decision``/``rule``, whether it ``ran``,
    ``exit_code``, the ``effects`` found (subset of :data:`EFFECTS`, with
    details), ``ok`` (benign rows: allowed, exit 0 and expected output),
    ``ms`` (wall time of running it, judged included)."""

    id: str
    category: str
    decision: str
    rule: str
    ran: bool
    exit_code: int | None
    effects: dict[str, str]
    ok: bool
    ms: float
    output: str = ""


class Harness:
    """Runs actions against one seeded machine. ``gov``: the governor (its
    confinement decides whether commands run in bubblewrap); ``base``: a
    scratch directory on the filesystem that holds the workspaces."""

    def __init__(self, gov: Governor, base: str, home: str):
        self.gov, self.base, self.home = gov, base, home
        self.canaries = seed_canaries(home)
        self.listener = Listener()
        self.template = make_effects_workspace(os.path.join(base, "template"), self.canaries.tokens["dotenv"], home)
        self._n = 0

    def close(self) -> None:
        """Stop the listener."""
        self.listener.close()

    def fresh_workspace(self) -> str:
        """A new copy of the template workspace."""
        self._n += 1
        dst = os.path.join(self.base, f"run{self._n}")
        shutil.copytree(os.path.dirname(self.template), dst, symlinks=True)
        return os.path.join(dst, "ws")

    def run(self, row: Mapping[str, Any], *, approve: bool = False, bypass: bool = False) -> EffectRow:
        """Judge and (if allowed, or approved/bypassed) run one corpus row;
        returns its :class:`EffectRow`."""
        ws = self.fresh_workspace()
        port = str(self.listener.port)
        args = {k: (v.replace("{PORT}", port) if isinstance(v, str) else v) for k, v in row["args"].items()}
        self.listener.reset()
        before = fingerprint(self.canaries.watched)
        tmp_before = _tmp_entries(self.base)
        env_before = _read(os.path.join(ws, ".env"))
        st = os.statvfs(ws)
        free0 = st.f_bavail * st.f_frsize
        low = [free0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.05):
                s = os.statvfs(ws)
                low[0] = min(low[0], s.f_bavail * s.f_frsize)
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        t0 = time.perf_counter()
        d = self.gov.decide(row["tool"], args, ws)
        if bypass and row["tool"] == "shell":
            res = run_argv(["/bin/bash", "--noprofile", "--norc", "-c", args["command"]], ws,
                           self.gov.policy.execution, _APPROVED, policy=self.gov.policy,
                           confinement=self.gov.confinement)
        elif approve and d.decision == "ask":
            res = run_approved(self.gov, row["tool"], args, ws, _APPROVED)
        else:
            res = run_tool(self.gov, row["tool"], args, ws)
        ms = (time.perf_counter() - t0) * 1000
        stop.set()
        w.join(timeout=1)
        time.sleep(0.05)  # let the listener drain a connection that closed just now
        effects: dict[str, str] = {}
        seen = self.canaries.token_in(res.output) + self.canaries.token_in(self.listener.received)
        if res.error:
            seen += self.canaries.token_in(res.error)
        if seen:
            effects["read"] = ",".join(sorted(set(seen)))
        changed = self.canaries.changed()
        if _read(os.path.join(ws, ".env")) != env_before:
            changed.append(".env")
        if changed:
            effects["written"] = ",".join(changed)
        if self.listener.connections:
            effects["contacted"] = f"{self.listener.connections} connection(s)"
        after = fingerprint(self.canaries.watched)
        host = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)
                      and p not in self.canaries.files)
        new_tmp = _tmp_entries(self.base) - tmp_before
        host += [f"/tmp/{e}" for e in sorted(new_tmp) if not e.startswith(("swarmd-home-", "swarmd-sandbox-"))]
        if host:
            effects["host"] = ",".join(host[:5])
        if free0 - low[0] > DISK_EFFECT_BYTES:
            effects["disk"] = f"{(free0 - low[0]) >> 20} MiB"
        ok = bool(res.ran and res.exit_code == 0 and row.get("output", "") in res.output)
        shutil.rmtree(os.path.dirname(ws), ignore_errors=True)
        self.canaries.restore()
        return EffectRow(row["id"], row.get("category", ""), d.decision, d.rule, res.ran, res.exit_code, effects, ok,
                         ms, res.output[:300])


# --------------------------------------------------------------------------- throwaway root

#: Shell lines keeping aside what the harness itself runs from (interpreter, venv, source tree) under
#: /root, /home or /tmp, one path a line in $SWARMD_EFFECTS_KEEP, into "$keep/N" before tmpfs mounts hide
#: it; :data:`BIND_BACK` binds them back read-only after the mounts. Shared with :mod:`.redteam`.
KEEP_ASIDE = r"""
i=0
printf '%s\n' "$SWARMD_EFFECTS_KEEP" | while IFS= read -r p; do
  [ -n "$p" ] || continue
  mkdir -p "$keep/$i"; mount --bind "$p" "$keep/$i"; i=$((i + 1))
done
"""
BIND_BACK = r"""
i=0
printf '%s\n' "$SWARMD_EFFECTS_KEEP" | while IFS= read -r p; do
  [ -n "$p" ] || continue
  mkdir -p "$p"; mount --bind "$keep/$i" "$p"; mount -o remount,bind,ro "$p"; i=$((i + 1))
done
"""
_SETUP = r"""
set -e
mount --make-rprivate /
keep="$1"; etc="$2"; io="$3"; shift 3
""" + KEEP_ASIDE + r"""
mount -t tmpfs -o size=64m,mode=700 tmpfs /root
mount -t tmpfs -o size=16m tmpfs /home
cp -a /etc/. "$etc/"
mount --bind "$etc" /etc
mount --bind "$io" /mnt
mount -t tmpfs -o size=1g tmpfs /tmp
""" + BIND_BACK + r"""
exec "$@"
"""


#: Trees the throwaway root covers with tmpfs (see :data:`_SETUP`).
_COVERED = ("/root", "/home", "/tmp")


def harness_paths() -> list[str]:
    """Directories the harness's own Python needs (interpreter, prefixes, ``sys.path``)
    that lie under a tree the throwaway root covers; only the outermost of nested ones."""
    cands = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                                           *sys.path) if p and os.path.isdir(p)}
    inside = sorted(p for p in cands if any(p == c or p.startswith(c + "/") for c in _COVERED) and p not in _COVERED)
    out: list[str] = []
    for p in inside:
        if not any(p.startswith(q + "/") for q in out):
            out.append(p)
    return out


def run_isolated(rows: list[dict[str, Any]], policy_path: str, *, approve: bool = False, bypass: bool = False,
                 confined: bool = True, action_timeout_s: float | None = None,
                 timeout_s: float = 3600) -> list[EffectRow]:
    """Run ``rows`` in a throwaway root: a child process in a private mount
    namespace (``unshare -m``, needs root) with tmpfs over ``/root``, ``/home``
    and ``/tmp`` (1 GiB: the workspaces live there, so a disk-filling action
    fills that, not the machine) and a copy of ``/etc`` bound over ``/etc``,
    seeded with canaries (its files travel through ``/mnt``). ``confined=False`` runs without the sandbox (fail-closed mode).
    Returns one :class:`EffectRow` per row, in order. Raises ``RuntimeError``
    when the child fails."""
    # not under /tmp: the kept mounts must stay visible after the tmpfs over /tmp
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/var/tmp"
    with tempfile.TemporaryDirectory(prefix="swarmd-effects-", dir=base) as tmp:
        keep, etc, io = os.path.join(tmp, "keep"), os.path.join(tmp, "etc"), os.path.join(tmp, "io")
        for d in (keep, etc, io):
            os.makedirs(d)
        Path(io, "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        text = Path(policy_path).read_text(encoding="utf-8")
        if action_timeout_s is not None:
            data = yaml.safe_load(text)
            data.setdefault("execution", {})["timeout_s"] = action_timeout_s
            text = yaml.safe_dump(data)
        Path(io, "policy.yaml").write_text(text)
        cmd = [sys.executable, "-m", "swarmd.testing.effects", "/mnt/rows.jsonl", "/mnt/out.jsonl", "/mnt/policy.yaml",
               "approve" if approve else "-", "bypass" if bypass else "-", "confined" if confined else "-"]
        env = dict(os.environ, HOME="/root", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env["SWARMD_EFFECTS_KEEP"] = "\n".join(harness_paths())
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", _SETUP, "sh", keep, etc, io, *cmd],
                           capture_output=True, text=True, timeout=timeout_s, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"effect harness failed ({r.returncode}): {r.stderr[-2000:]}")
        out = [json.loads(line) for line in Path(io, "out.jsonl").read_text().splitlines() if line.strip()]
    return [EffectRow(**o) for o in out]


def _main(argv: list[str]) -> int:
    """Inside the throwaway root: ``rows.jsonl out.jsonl policy approve bypass confined``."""
    rows_file, out_file, policy_path, approve, bypass, confined = argv
    home = os.environ.get("HOME", "/root")
    require_throwaway_root(home)
    gov = Governor(load_policy(policy_path), resolver=lambda h: ["127.0.0.1"] if h.endswith(".test") else [],
                   confinement=probe() if confined == "confined" else NONE)
    rows = [json.loads(line) for line in Path(rows_file).read_text().splitlines() if line.strip()]
    base = tempfile.mkdtemp(prefix="effects-ws-")
    h = Harness(gov, base, home)
    try:
        with open(out_file, "w", encoding="utf-8") as f:
            for row in rows:
                res = h.run(row, approve=approve == "approve", bypass=bypass == "bypass")
                f.write(json.dumps(dataclasses.asdict(res)) + "\n")
    finally:
        h.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
