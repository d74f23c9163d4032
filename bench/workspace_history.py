"""How should the agent's copy get the workspace's history without any secret? Measured.

Run (from the repo root): ``PYTHONPATH=src python bench/workspace_history.py [--files 10000] [--commits 60]``

On a generated git repository of ``--files`` files and ``--commits`` commits (each commit
changes 20 files; every third one also a tracked ``.env``, and the first one commits a
``deploy/server.key`` that a later one removes), median seconds over ``--repeats`` runs of:

- baseline, in the same run: ``git clone --depth N --no-local`` (history, secrets included);
- ``history.import_history`` (what swarmd does): ``fast-export --no-data`` filtered by path,
  only the kept blobs fed to ``fast-import`` (N commits, secret paths left out of all of them);
- the shallow clone, then a rewrite: ``git filter-branch --index-filter 'git rm --cached ...'``,
  then reflog expiry and ``gc --prune=now`` (without them the secret blobs stay in the object store);
- ``make_copy`` with ``history_commits`` = 0 (one snapshot commit) and = N.

Each row also says whether a secret's bytes are in the result's object store
(``git cat-file --batch-all-objects --batch``).
"""

from __future__ import annotations

import argparse
import importlib.util
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
sys.path[:] = [str(REPO / "src")] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

from swarmd.governor import load_policy  # noqa: E402
from swarmd.governor.history import import_history  # noqa: E402
from swarmd.governor.policy import parse_policy  # noqa: E402
from swarmd.governor.workspace import GIT_SAFE, AgentCopy, _secret_rel, discard, make_copy  # noqa: E402

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
       "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x",
       "LANG": "C", "FILTER_BRANCH_SQUELCH_WARNING": "1"}
SECRET = "SECRET-BYTES-7c1f"


def sh(*argv: str, cwd: str | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, env=ENV, check=True, capture_output=True).stdout.decode("utf-8", "replace")


def make_repo(root: Path, files: int, commits: int, seed: int = 7) -> Path:
    """``bench/workspace_copy.py``'s repository, then a key and ``commits - 1`` more commits."""
    spec = importlib.util.spec_from_file_location("workspace_copy_bench", REPO / "bench" / "workspace_copy.py")
    assert spec is not None and spec.loader is not None
    wc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wc)
    ws = wc.make_repo(root, files, seed)
    rnd = random.Random(seed)
    (ws / "deploy").mkdir()
    (ws / "deploy" / "server.key").write_text(f"{SECRET}-key\n")
    (ws / ".env").write_text(f"TOKEN={SECRET}-0\n")
    for c in range(1, commits):
        for _ in range(20):
            i = rnd.randrange(files)
            with open(ws / f"pkg{i // 100:03d}" / f"mod{i % 100:02d}.py", "a") as f:
                f.write(f"# change {c}\n")
        if c % 3 == 0:
            (ws / ".env").write_text(f"TOKEN={SECRET}-{c}\n")
        if c == commits // 2:
            (ws / "deploy" / "server.key").unlink()
        sh("git", "add", "-A", cwd=str(ws))
        sh("git", "commit", "-qm", f"change {c}", cwd=str(ws))
    return ws


def leaks(repo: str) -> bool:
    out = subprocess.run(["git", "-c", "safe.directory=*", "cat-file", "--batch-all-objects", "--batch"], cwd=repo,
                         env=ENV, capture_output=True).stdout
    return SECRET.encode() in out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--history", type=int, default=50, help="commits the copy gets (sandbox.history_commits)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    text = (REPO / "src" / "swarmd" / "policy.yaml").read_text()
    pol0 = parse_policy(text.replace("  history_commits: 50\n", "  history_commits: 0\n"))
    poln = parse_policy(text.replace("  history_commits: 50\n", f"  history_commits: {a.history}\n"))
    policy = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    with tempfile.TemporaryDirectory(prefix="swarmd-bench-history-") as tmp:
        t0 = time.perf_counter()
        ws = make_repo(Path(tmp), a.files, a.commits)
        print(f"repository: {a.files} files, {a.commits} commits, made in {time.perf_counter() - t0:.1f} s; "
              f"the copy gets {a.history} commits; median of {a.repeats}")
        secret = _secret_rel(policy, str(ws))

        def clone(dest: str) -> str:
            sh("git", "clone", "-q", f"--depth={a.history}", "--no-local", "--single-branch", f"file://{ws}", dest)
            return dest

        def fast_export(dest: str) -> str:
            os.makedirs(dest)
            sh("git", "init", "-q", "-b", "main", cwd=dest)
            import_history(str(ws), dest, "main", a.history, secret, ["git", *GIT_SAFE], ENV)
            return dest

        def clone_rewrite(dest: str) -> str:
            clone(dest)
            sh("git", "filter-branch", "-f", "--index-filter",
               "git rm -q -r --cached --ignore-unmatch .env deploy/server.key", "--", "--all", cwd=dest)
            sh("git", "for-each-ref", "--format=%(refname)", "refs/original/", cwd=dest)
            subprocess.run("git for-each-ref --format='delete %(refname)' refs/original | git update-ref --stdin",
                           shell=True, cwd=dest, env=ENV, check=True)
            sh("git", "reflog", "expire", "--expire=now", "--all", cwd=dest)
            sh("git", "gc", "-q", "--prune=now", cwd=dest)
            return dest

        def copy(pol) -> Callable[[str], str]:
            def make(dest: str) -> str:
                make_copy(str(ws), dest, pol)
                return os.path.join(dest, "tree")
            return make

        rows: list[tuple[str, float, bool]] = []
        for name, make, is_copy in (("baseline: git clone --depth N --no-local", clone, False),
                                    ("import_history (fast-export filtered, kept blobs packed)", fast_export, False),
                                    ("clone --depth N + filter-branch + gc", clone_rewrite, False),
                                    ("make_copy, history_commits=0 (snapshot)", copy(pol0), True),
                                    (f"make_copy, history_commits={a.history}", copy(poln), True)):
            times, leaked = [], False
            for r in range(a.repeats if "filter-branch" not in name else 1):
                dest = os.path.join(tmp, f"d-{len(rows)}-{r}")
                t = time.perf_counter()
                out = make(dest)
                times.append(time.perf_counter() - t)
                leaked = leaked or leaks(out)
                (discard(AgentCopy(dest, str(ws))) if is_copy else shutil.rmtree(dest, ignore_errors=True))
            rows.append((name, statistics.median(times), leaked))
        base = rows[0][1]
        print(f"{'method':55} {'seconds':>8} {'x baseline':>10}  secret in objects")
        for name, s, leaked in rows:
            print(f"{name:55} {s:8.2f} {s / base:10.2f}  {'YES' if leaked else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
