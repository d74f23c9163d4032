"""One resource envelope per objective (issue 21, deliverable 3), on real bubblewrap and the
machine's real cgroups: memory, processes and CPU limited per objective (cgroup v1 or v2), the
writable layer capped in bytes and inodes, /tmp and /dev/shm capped, the sandboxed user never
root on the host. Each breach fails that action with a reason naming the limit; the worker
(this test process) lives and runs the next command."""

from __future__ import annotations

import os

import pytest

from swarmd.governor import Decision
from swarmd.governor import envelope
from swarmd.governor.execute import run_argv
from swarmd.governor.sandbox import HOST_UID, PRIVILEGED, probe

from .conftest import make_workspace
from .test_sandbox import sandbox_policy as policy

ALLOW = Decision("allow", "test", "test")
PY = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(not probe().available, reason="bwrap not usable here")


@pytest.fixture()
def ws(tmp_path):
    return str(make_workspace(tmp_path))


def run(ws, script, pol=None, objective_id=None, **limits):
    """Run python ``script`` (source) in the sandbox, as a workspace script file."""
    path = os.path.join(ws, "probe_script.py")
    with open(path, "w") as f:
        f.write(script)
    pol = pol or policy()
    lim = pol.execution.model_copy(update={"timeout_s": 60, **limits})
    return run_argv([PY, path], ws, lim, ALLOW, policy=pol, objective_id=objective_id)


def worker_lives(ws):
    r = run(ws, "print('still here')")
    assert r.exit_code == 0 and r.output == "still here\n" and r.error is None, r


def test_sandboxed_user_is_never_root_on_the_host(ws):
    r = run(ws, "import os\nopen('mine.txt', 'w').write('x')\nos.chmod('mine.txt', 0o4755)\n"
                "inside, outside, _ = open('/proc/self/uid_map').read().split()[:3]\nprint(os.getuid(), inside, outside)")
    assert r.exit_code == 0, r
    uid, inside, outside = map(int, r.output.split())
    st = os.stat(os.path.join(ws, "mine.txt"))
    assert st.st_uid != 0 and uid == inside and outside != 0, (r.output, st.st_uid)
    if PRIVILEGED:
        assert st.st_uid == HOST_UID  # a setuid bit, if any, is a non-root uid's


def test_inode_bomb_in_the_workspace_fails_the_action(ws):
    r = run(ws, "import os\nos.mkdir('many')\nfor i in range(200000):\n    open(f'many/{i}', 'w').close()\n",
            pol=policy(write_cap_inodes=3000))
    assert r.error is not None and "write_cap_inodes=3000" in r.error, r
    assert len(os.listdir(os.path.join(ws, "many"))) < 200000
    worker_lives(ws)


def test_inode_bomb_in_tmp_fails_the_action(ws):
    r = run(ws, "import os\nfor i in range(100000):\n    open(f'/tmp/{i}', 'w').close()\n", pol=policy(tmp_inodes=2000))
    assert r.exit_code != 0 and r.error is not None and "inodes" in r.error and "tmp_inodes=2000" in r.error, r
    worker_lives(ws)


def test_dev_shm_is_capped(ws):
    r = run(ws, "f = open('/dev/shm/fill', 'wb')\nfor _ in range(400):\n    f.write(b'x' * (1 << 20))\n    f.flush()\n",
            pol=policy(tmp_size_mb=16), file_size_mb=1024)
    assert r.exit_code != 0 and r.error is not None and "tmp_size_mb=16" in r.error, r
    worker_lives(ws)


def test_fork_bomb_fails_the_action(ws):
    bomb = ("import os, time\nkids = 0\ntry:\n    for _ in range(2000):\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        kids += 1\nexcept OSError as e:\n"
            "    print('fork failed after', kids, e)\n")
    r = run(ws, bomb, max_processes=24)
    assert "fork failed" in r.output, r
    assert r.error is not None and ("pids.max=24" in r.error or envelope.detect().version == 0), r
    worker_lives(ws)


@pytest.mark.skipif(envelope.detect().version == 0, reason="no cgroup hierarchy here")
def test_memory_envelope_covers_the_objectives_processes_together(ws):
    """Each process stays under RLIMIT_AS; together they exceed the objective's memory."""
    hog = ("import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n        b = bytearray(120 << 20)\n"
           "        for i in range(0, len(b), 4096):\n            b[i] = 1\n        time.sleep(20)\n        os._exit(0)\n"
           "for _ in range(6):\n    os.wait()\n")
    r = run(ws, hog, memory_mb=300)
    assert r.error is not None and "memory envelope (300 MiB" in r.error, r
    worker_lives(ws)


@pytest.mark.skipif(envelope.detect().version == 0, reason="no cgroup hierarchy here")
def test_one_envelope_per_objective(ws):
    """Commands of one objective share its cgroups (a process left running counts for the next); release removes them."""
    env = envelope.envelope_for("obj-envelope-test", memory_mb=512, max_processes=40, cpu_cores=1.0)
    try:
        r = run(ws, "import resource\nprint(open('/proc/self/cgroup').read())\n"
                    "print([resource.getrlimit(getattr(resource, 'RLIMIT_' + k)) for k in ('CPU', 'NOFILE', 'CORE')])",
                objective_id="obj-envelope-test", cpu_s=17)
        assert r.exit_code == 0, r
        # the command itself is in the envelope's cgroups and has the rlimits (set before it started)
        for d in env.dirs.values():
            assert "/swarmd/" + os.path.basename(d) + "\n" in r.output, (d, r.output)
        nofile = policy().sandbox.open_files
        assert f"[(17, 18), ({nofile}, {nofile}), (0, 0)]" in r.output, r.output
        assert envelope.envelope_for("obj-envelope-test", memory_mb=1, max_processes=1, cpu_cores=1) is env
        assert all(os.path.isdir(d) for d in env.dirs.values())
        limit = "memory.max" if env.version == 2 else "memory.limit_in_bytes"
        assert int(open(os.path.join(env.dirs["memory"], limit)).read()) == 512 << 20
    finally:
        envelope.release("obj-envelope-test")
    assert not any(os.path.isdir(d) for d in env.dirs.values())


def test_without_cgroups_the_envelope_degrades_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(envelope, "CGROUP_ROOT", str(tmp_path))
    c = envelope.detect.__wrapped__()
    assert c.version == 0 and "rlimits only" in c.reason


@pytest.mark.skipif(envelope.detect().version == 0, reason="no cgroup hierarchy here")
def test_two_workers_never_share_an_objectives_cgroups(ws):
    """The same objective id in two worker processes (``swarmctl policy run`` names objectives by action
    id) gets two envelopes: the other process releasing its own does not kill this one's command
    (red-team rt-b048: a shared v1 ``cpu`` hierarchy made one root's release SIGKILL the other's make)."""
    import subprocess
    import sys
    import threading
    oid = f"shared-{os.getpid()}"
    mine = envelope.envelope_for(oid, memory_mb=512, max_processes=40, cpu_cores=1.0)
    try:
        box: dict = {}
        t = threading.Thread(target=lambda: box.update(r=run(ws, "import time\ntime.sleep(3)\nprint('done')",
                                                              objective_id=oid)))
        t.start()
        # the other worker: same objective id, its envelope made and released while this command runs
        other = subprocess.run([sys.executable, "-c", (
            "import sys, time\nfrom swarmd.governor import envelope\n"
            f"e = envelope.envelope_for({oid!r}, memory_mb=512, max_processes=40, cpu_cores=1.0)\n"
            "print('\\n'.join(e.dirs.values()))\ntime.sleep(0.5)\nenvelope.release(" + repr(oid) + ")\n")],
            capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        t.join(120)
        assert other.returncode == 0, other.stderr
        theirs = set(other.stdout.split())
        assert theirs and not theirs & set(mine.dirs.values()), (theirs, mine.dirs)
        assert all(os.path.basename(d).startswith(envelope.owner_tag() + "-") for d in mine.dirs.values())
        r = box["r"]
        assert r.exit_code == 0 and r.output.strip() == "done", r
    finally:
        envelope.release(oid)


@pytest.mark.skipif(envelope.detect().version == 0, reason="no cgroup hierarchy here")
def test_a_starting_worker_sweeps_the_cgroups_a_crashed_one_left():
    """sweep() (run when a worker starts) removes, on the real hierarchy, the envelopes of a worker
    that died without releasing them, killing what was left running in them, and empty cgroups of
    an older name; envelopes of a running process (this one) stay."""
    import subprocess
    import sys
    crashed = subprocess.run([sys.executable, "-c", (
        "import os, subprocess\nfrom swarmd.governor import envelope\n"
        "e = envelope.envelope_for('sweep-test', memory_mb=256, max_processes=20, cpu_cores=1.0)\n"
        "p = subprocess.Popen(['sleep', '600'], start_new_session=True, stdout=subprocess.DEVNULL,\n"
        "                     stderr=subprocess.DEVNULL)\n"
        "for f in e.procs():\n    open(f, 'w').write(str(p.pid))\n"
        "print(p.pid)\nprint('\\n'.join(e.dirs.values()), flush=True)\nos._exit(0)\n")],   # a crash: no release
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert crashed.returncode == 0, crashed.stderr
    stray, *left = crashed.stdout.split()
    assert left and all(os.path.isdir(d) for d in left)
    parent = os.path.dirname(left[0])
    legacy_empty = os.path.join(parent, f"obj-legacy-{os.getpid()}")
    os.makedirs(legacy_empty, exist_ok=True)
    mine = envelope.envelope_for("sweep-mine", memory_mb=256, max_processes=20, cpu_cores=1.0)
    try:
        removed = envelope.sweep()
        assert set(left) <= set(removed) and legacy_empty in removed, removed
        assert not any(os.path.isdir(d) for d in left) and not os.path.isdir(legacy_empty)
        assert all(os.path.isdir(d) for d in mine.dirs.values())        # a running worker's envelope stays
        assert not os.path.exists(f"/proc/{stray}") or open(f"/proc/{stray}/stat").read().split()[2] == "Z"
    finally:
        envelope.release("sweep-mine")
        for d in [*left, legacy_empty]:
            if os.path.isdir(d):
                os.rmdir(d)
