"""Red team by effects: every row of the red-team corpus run for real, then the operator's next git.

Run as root from the repo root (``unshare`` and cgroups for the throwaway roots):
``python bench/redteam.py [--procs 2] [--only ID,KIND...] [--json FILE] [--action-timeout 10]``.

Each row (``tests/governor/corpus/redteam.jsonl``: id, kind, goal, actions in the format of
``swarmctl policy run --file``) runs through ``swarmctl policy run`` (a subprocess, the shipped
``policy.yaml`` with ``execution.timeout_s`` = ``--action-timeout``) in a fresh copy of a real git
workspace inside a throwaway root seeded with canaries (:mod:`swarmd.testing.redteam`); then, as root
in that workspace, ``git status``, ``git diff``, ``git log -p`` and ``git commit -am x`` run at a
pty, as a person would next. Detectors: code run on the host (markers), host files changed, secrets in
any output (action output, log, data dir/audit, the operator's git for host secrets), host names
revealed, swarmctl hung or died, processes left behind, exhaustion beyond the policy's envelope, tracked
or uncommitted work destroyed, setuid/capability files, devices/FIFOs, git metadata or escaping links
planted, contact with the fake internet. Prints a table by kind (attacks, with an effect, stopped:
some action denied or asked), the benign share allowed and succeeding, hung/lost counts, every effect
by row; writes every result as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/ itself off the path: bench/queue_throughput.py would shadow the standard library's queue (urllib3 imports it)
sys.path[:] = [str(REPO / "src")] + [p for p in sys.path if p and Path(p).resolve() != REPO / "bench"]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.jsonl import read_jsonl  # noqa: E402
from swarmd.testing.effects import cannot_run  # noqa: E402
from swarmd.testing import redteam  # noqa: E402
from swarmd.testing.redteam import EFFECT_KINDS, check_row, run_shards  # noqa: E402

CORPUS = REPO / "tests" / "governor" / "corpus" / "redteam.jsonl"


def compare(console: Console, before: list[dict], after: list) -> None:
    """Per kind: attacks with an effect before and none now (fixed), with one in both (remaining), with
    none before and one now (new); benign rows that stopped succeeding."""
    old = {r["id"]: r for r in before}
    t = Table(title="against the earlier results")
    for h in ("kind", "effects before", "fixed", "remaining", "new"):
        t.add_column(h, justify="right")
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in after:
        o = old.get(r.id)
        if o is None or r.benign:
            continue
        c = kinds[r.kind]
        c["before"] += bool(o["effects"])
        c["fixed"] += bool(o["effects"]) and not r.effects
        c["remaining"] += bool(o["effects"]) and bool(r.effects)
        c["new"] += not o["effects"] and bool(r.effects)
    for kind in sorted(kinds):
        c = kinds[kind]
        t.add_row(kind, str(c["before"]), str(c["fixed"]), str(c["remaining"]), str(c["new"]))
    console.print(t)
    for r in after:
        o = old.get(r.id)
        if o is not None and r.benign and o["ok"] and not r.ok:
            console.print(f"  benign {r.id} succeeded before, not now: {r.actions[-1:]}", markup=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(CORPUS), help="JSONL rows (default: %(default)s)")
    ap.add_argument("--policy", default=str(REPO / "src" / "swarmd" / "policy.yaml"))
    ap.add_argument("--procs", type=int, default=2, help="throwaway roots run at once (default 2)")
    ap.add_argument("--only", help="comma-separated row ids or kinds")
    ap.add_argument("--action-timeout", type=float, default=10, help="execution.timeout_s for the run, seconds")
    ap.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "swarmd-redteam.json"),
                    help="results file (default: %(default)s; the baseline of docs/redteam.md is "
                         "bench/data/redteam-baseline.json, for --compare)")
    ap.add_argument("--compare", help="an earlier results file: print, by kind, the attacks whose effects went away, "
                                      "stayed, or are new")
    ns = ap.parse_args()
    if why := cannot_run():
        print(why, file=sys.stderr)
        return 2
    rows = list(read_jsonl(ns.corpus, check_row))
    if ns.only:
        want = set(ns.only.split(","))
        rows = [r for r in rows if r["id"] in want or r["kind"] in want]
    console = Console(width=200)
    source = Path(redteam.__file__).resolve().parents[2]
    console.print(f"swarmd under test: {source}; policy: {ns.policy}; execution.timeout_s={ns.action_timeout}",
                  markup=False)
    t0 = time.time()
    res = run_shards(rows, ns.policy, procs=ns.procs, action_timeout_s=ns.action_timeout,
                     progress=lambda n, total: print(f"\r{n}/{total} rows", end="", file=sys.stderr))
    elapsed = time.time() - t0
    print(file=sys.stderr)
    kinds: dict[str, list] = collections.defaultdict(list)
    for r in res:
        if not r.benign:
            kinds[r.kind].append(r)
    t = Table(title=f"red team by kind ({len(res)} rows, {ns.procs} procs, {elapsed:.0f} s)")
    for h in ("kind", "attacks", "with effect", "stopped", *EFFECT_KINDS):
        t.add_column(h, justify="right")
    tot: collections.Counter = collections.Counter()
    for kind in sorted(kinds):
        rs = kinds[kind]
        per = collections.Counter(e for r in rs for e in r.effects)
        fx = sum(bool(r.effects) for r in rs)
        st = sum(r.stopped for r in rs)
        tot.update(rows=len(rs), fx=fx, st=st, **per)
        t.add_row(kind, str(len(rs)), str(fx), str(st), *(str(per[e] or "") for e in EFFECT_KINDS))
    t.add_row("[bold]all dangerous", str(tot["rows"]), str(tot["fx"]), str(tot["st"]),
              *(str(tot[e] or "") for e in EFFECT_KINDS))
    console.print(t)
    benign = [r for r in res if r.benign]
    ok = [r for r in benign if r.ok]
    bfx = [r for r in benign if r.effects]
    hung = [r.id for r in res if "hung" in r.effects]
    died = [r.id for r in res if "died" in r.effects]
    if benign:
        console.print(f"benign: {len(ok)}/{len(benign)} allowed and succeeded ({len(ok) / len(benign):.1%}); "
                      f"benign rows with an effect: {len(bfx)}")
    console.print(f"hung: {len(hung)} {hung}; lost (swarmctl died): {len(died)} {died}")
    for r in benign:
        if not r.ok or r.effects:
            first = next((a for a in r.actions if a.get("decision") != "allow" or a.get("exit_code") != 0),
                         r.actions[-1] if r.actions else {})
            console.print(f"  benign {r.id} ok={r.ok} {first.get('decision')} {first.get('rule')} "
                          f"exit={first.get('exit_code')} effects={r.effects}", markup=False)
    for kind in sorted(kinds):
        for r in kinds[kind]:
            if r.effects:
                console.print(f"  effect {kind} {r.id}: {r.effects}", markup=False)
    if ns.compare:
        compare(console, json.loads(Path(ns.compare).read_text())["rows"], res)
    Path(ns.json).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.json).write_text(json.dumps({"source": str(source), "policy": ns.policy, "elapsed_s": round(elapsed, 1),
                                         "procs": ns.procs,
                                         "action_timeout_s": ns.action_timeout,
                                         "rows": [r.__dict__ for r in res]}, indent=1))
    console.print(f"results: {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
