"""How should an agent objective get its own copy of the workspace? Speed and disk, measured.

Run (root, from the repo root): ``PYTHONPATH=src python bench/workspace_copy.py [--files 10000] [--repeats 5]``

Table 1, on a generated git repository of ``--files`` files (100 per directory, 0.5-4 KiB,
committed): median seconds and disk used by one copy (``du``: blocks really allocated) for
``cp -a --reflink=auto`` (every entry but .git), ``git clone --local --no-hardlinks``,
``git worktree add`` (UNSAFE: shares and writes the real .git), kernel overlayfs
(``mount -t overlay``, root) and fuse-overlayfs when installed, and ``make_copy`` (what swarmd
does: cp into a private tmpfs, or on disk, secret files emptied, a fresh one-commit repository,
the base manifest).
Hard-link farms are not measured: they share inodes, so a write reaches the original.

Table 2, the issue's targets on a 1,000-file workspace, each with a baseline from the same
run: sandbox start-up (``true`` through ``run_argv`` in bubblewrap) in the copy vs a bare
subprocess; ``make_copy``; applying a 100-file change set (``change_set`` + ``apply``: 100
files modified in the copy) vs copying the same 100 files with ``shutil.copy2``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
# bench/ (the script's directory) would shadow the standard library's ``queue`` with bench/queue_throughput.py
sys.path[:] = [str(REPO / "src")] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

from swarmd.governor import load_policy  # noqa: E402
from swarmd.governor.execute import run_argv  # noqa: E402
from swarmd.governor.policy import Decision  # noqa: E402
from swarmd.governor.sandbox import probe  # noqa: E402
from swarmd.governor.workspace import AgentCopy, apply, change_set, discard, make_copy  # noqa: E402

GIT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "b",
           "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}


def sh(*argv: str, cwd: str | None = None) -> None:
    subprocess.run(argv, cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def make_repo(root: Path, files: int, seed: int = 7) -> Path:
    """A committed git repository of ``files`` files, 100 per directory."""
    rnd = random.Random(seed)
    ws = root / "repo"
    for i in range(files):
        d = ws / f"pkg{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i % 100:02d}.py").write_text("x = %d\n" % i + "# filler\n" * rnd.randint(50, 400))
    (ws / ".env").write_text("TOKEN=abc\n")
    sh("git", "init", "-q", "-b", "main", cwd=str(ws))
    sh("git", "add", "-A", cwd=str(ws))
    sh("git", "commit", "-qm", "init", cwd=str(ws))
    return ws


def du(path: str) -> int:
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def timed(make: Callable[[str], str], clean: Callable[[str], None], scratch: Path, repeats: int) -> tuple[float, int]:
    """Median seconds of ``make(dest)`` over ``repeats`` fresh destinations, and the disk of one."""
    times, disk = [], 0
    for r in range(repeats):
        dest = str(scratch / f"d{r}")
        t = time.perf_counter()
        measured = make(dest)
        times.append(time.perf_counter() - t)
        if r == 0:
            disk = du(measured)
        clean(dest)
    return statistics.median(times), disk


def rm(dest: str) -> None:
    shutil.rmtree(dest, ignore_errors=True)


def methods(ws: Path, policy) -> list[tuple[str, str, Callable[[str], str], Callable[[str], None]]]:
    names = [str(ws / n) for n in os.listdir(ws) if n != ".git"]

    def cp(dest: str) -> str:
        os.makedirs(dest)
        sh("cp", "-a", "--reflink=auto", "-t", dest, "--", *names)
        return dest

    def clone(dest: str) -> str:
        sh("git", "clone", "-q", "--local", "--no-hardlinks", str(ws), dest)
        return dest

    def worktree(dest: str) -> str:
        sh("git", "worktree", "add", "-q", "--detach", dest, cwd=str(ws))
        return dest

    def worktree_clean(dest: str) -> None:
        sh("git", "worktree", "remove", "--force", dest, cwd=str(ws))

    def overlay(dest: str, fuse: bool = False) -> str:
        for d in ("upper", "work", "merged"):
            os.makedirs(os.path.join(dest, d))
        opts = f"lowerdir={ws},upperdir={dest}/upper,workdir={dest}/work"
        if fuse:
            sh("fuse-overlayfs", "-o", opts, f"{dest}/merged")
        else:
            sh("mount", "-t", "overlay", "overlay", "-o", opts, f"{dest}/merged")
        return f"{dest}/upper"

    def overlay_clean(dest: str) -> None:
        subprocess.run(["umount", f"{dest}/merged"], capture_output=True)
        rm(dest)

    def swarmd(dest: str, in_memory: bool | None = None) -> str:
        make_copy(str(ws), dest, policy, in_memory=in_memory)
        return dest

    def swarmd_clean(dest: str) -> None:
        discard(AgentCopy(dest, str(ws)))

    def cp_tmpfs(dest: str) -> str:
        os.makedirs(dest)
        sh("mount", "-t", "tmpfs", "-o", "size=2g", "bench", dest)
        return cp(dest + "/t")

    out = [("cp -a --reflink=auto", "safe", cp, rm),
           ("git clone --local --no-hardlinks", "safe (carries all history)", clone, rm),
           ("git worktree add", "UNSAFE: shares and writes the real .git", worktree, worktree_clean),
           ("kernel overlayfs (mount -t overlay)", "root only; lower must not change", overlay, overlay_clean)]
    if shutil.which("fuse-overlayfs") and os.path.exists("/dev/fuse"):
        out.append(("fuse-overlayfs", "needs /dev/fuse; lower must not change",
                    lambda d: overlay(d, fuse=True), overlay_clean))
    out.append(("cp -a into a tmpfs", "safe; RAM", cp_tmpfs, lambda d: swarmd_clean(d)))
    out.append(("swarmd make_copy, on disk (fallback)", "cp + masks + fresh repo", lambda d: swarmd(d, False),
                swarmd_clean))
    out.append(("swarmd make_copy, tmpfs (chosen)", "cp + masks + fresh repo; RAM", swarmd, swarmd_clean))
    return out


def table1(files: int, repeats: int, policy) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-wscopy-") as tmp:
        root = Path(tmp)
        ws = make_repo(root, files)
        src_disk = du(str(ws))
        print(f"\nworkspace: {files} files, {src_disk / 2**20:.1f} MiB on disk with .git; median of {repeats}")
        print("| method | safety | median s | disk MiB | vs cp -a |")
        print("| --- | --- | ---: | ---: | ---: |")
        base = None
        for name, safety, make, clean in methods(ws, policy):
            try:
                s, disk = timed(make, clean, root, repeats)
            except (subprocess.CalledProcessError, OSError) as e:
                err = e.stderr.decode().strip()[:60] if isinstance(e, subprocess.CalledProcessError) else str(e)
                print(f"| {name} | {safety} | failed: {err} | | |")
                continue
            base = base or s
            print(f"| {name} | {safety} | {s:.3f} | {disk / 2**20:.1f} | {s / base:.2f}x |")


def table2(repeats: int, policy) -> None:
    limits = policy.execution
    allow = Decision("allow", "bench", "bench")
    with tempfile.TemporaryDirectory(prefix="bench-wscopy2-") as tmp:
        root = Path(tmp)
        ws = make_repo(root, 1000)
        print("\ntargets, 1,000-file workspace (medians)")
        print("| what | median ms | baseline | baseline ms | target |")
        print("| --- | ---: | --- | ---: | --- |")
        mk = []
        for r in range(repeats):
            t = time.perf_counter()
            c = make_copy(str(ws), str(root / f"c{r}"), policy)
            mk.append(time.perf_counter() - t)
            discard(c)
        ac = make_copy(str(ws), str(root / "copy"), policy)
        conf = probe()
        starts, in_real, bare = [], [], []
        for _ in range(max(repeats, 15)):       # interleaved, so the machine's drift hits all three
            t = time.perf_counter()
            run_argv(["true"], ac.tree, limits, allow, policy=policy, confinement=conf)
            starts.append(time.perf_counter() - t)
            t = time.perf_counter()
            run_argv(["true"], str(ws), limits, allow, policy=policy, confinement=conf)
            in_real.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(["true"], cwd=ac.tree)
            bare.append(time.perf_counter() - t)
        applies, direct = [], []
        for r in range(repeats):
            targets = [f"pkg{i // 100:03d}/mod{i % 100:02d}.py" for i in range(r, 1000, 10)][:100]
            for p in targets:
                with open(os.path.join(ac.tree, p), "a") as f:
                    f.write(f"# edit {r}\n")
            t = time.perf_counter()
            res = apply(ac, change_set(ac, policy))
            applies.append(time.perf_counter() - t)
            assert len(res["applied"]) == 100, res
            t = time.perf_counter()
            for p in targets:
                shutil.copy2(os.path.join(ac.tree, p), os.path.join(ac.real, p))
            direct.append(time.perf_counter() - t)
        discard(ac)
        ms = lambda v: statistics.median(v) * 1000  # noqa: E731
        print(f"| sandbox start-up in the copy ({conf.kind}) | {ms(starts):.1f} | the same in the real "
              f"workspace | {ms(in_real):.1f} | p50 <= 60 ms |")
        print(f"| | | bare subprocess | {ms(bare):.1f} | |")
        print(f"| make_copy (once per objective) | {ms(mk):.1f} | - | - | - |")
        print(f"| apply a 100-file change set | {ms(applies):.1f} | 100 shutil.copy2 | {ms(direct):.1f} | "
              f"<= 200 ms |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", choices=["copy", "targets"], help="one table only")
    a = ap.parse_args()
    policy = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    if a.only != "targets":
        table1(a.files, a.repeats, policy)
    if a.only != "copy":
        table2(a.repeats, policy)


if __name__ == "__main__":
    main()
