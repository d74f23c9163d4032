"""Benchmark the governor's decide() on the test corpus.

Run: ``python bench/governor.py [--repeats N]`` from the repo root (PYTHONPATH=src
if swarmd is not installed). Every corpus action (tests/governor/corpus/*.jsonl)
is decided N times in a temporary workspace with the tests' fixed DNS table.

"cold": the parse cache is cleared before each pass, so every shell line goes
through the fast path or bashlex; "warm": the same lines again with the parse
cache filled (the daemon sees repeated commands often). Latencies are per
decision; each figure is the median over the repeats.

Then the start-up of one tool call (``--start-up RUNS``, default 30): shell ``true``,
``read_file`` and ``write_file`` through the sandbox in a 1,000-file workspace, against a
bare subprocess measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/ itself off the path: its queue.py would shadow the standard library's queue (imported by
# detect-secrets -> requests -> urllib3 when swarmd.governor loads)
sys.path[:] = [str(REPO / "src")] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from swarmd.governor import Governor, load_policy  # noqa: E402
from swarmd.governor.shell import fast_parse, parse_command  # noqa: E402
from swarmd.testing.governor import load_corpus, make_workspace, table_resolver  # noqa: E402

CORPUS = REPO / "tests" / "governor" / "corpus"   # data files, read (not imported)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def one_pass(gov: Governor, actions: list[dict], ws: str) -> tuple[list[float], int]:
    lat, correct = [], 0
    for a in actions:
        t = time.perf_counter_ns()
        d = gov.decide(a["tool"], a["args"], ws)
        lat.append((time.perf_counter_ns() - t) / 1e6)
        ok = (d.decision, d.rule) == (a["expect"], a["rule"])
        correct += ok
    return lat, correct


def start_up(runs: int) -> list[tuple[str, float, float]]:
    """Start-up of one tool call in a 1,000-file workspace, ``runs`` times each: a bare
    subprocess ``true`` (the baseline, no sandbox) and, through :func:`run_tool` (sandbox,
    envelope, masks, limits), shell ``true``, ``read_file`` and ``write_file``. Returns
    ``(what, p50 ms, p90 ms)`` rows."""
    import subprocess

    from swarmd.governor.execute import run_tool
    gov = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"), resolver=table_resolver)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        for i in range(1000):
            (ws / f"d{i % 20}").mkdir(parents=True, exist_ok=True)
            (ws / f"d{i % 20}" / f"f{i}.txt").write_text("x\n")
        calls = [("bare subprocess true (baseline)", lambda: subprocess.run(["true"], check=True))]
        for tool, args in (("shell", {"command": "true"}), ("read_file", {"path": "d1/f1.txt"}),
                           ("write_file", {"path": "out.txt", "content": "hello"})):
            def call(tool=tool, args=args):
                r = run_tool(gov, tool, args, str(ws), objective_id="bench-start-up")
                assert r.ran and r.error is None, r
            calls.append((f"{tool} in the sandbox", call))
        for what, fn in calls:
            xs = []
            for _ in range(runs):
                t = time.perf_counter()
                fn()
                xs.append((time.perf_counter() - t) * 1000)
            rows.append((what, percentile(xs, 0.5), percentile(xs, 0.9)))
    return rows


def print_start_up(rows: list[tuple[str, float, float]], runs: int) -> None:
    """The start-up table, with each row's ratio to the bare-subprocess baseline."""
    base = rows[0][1]
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"tool call start-up, 1,000-file workspace ({runs} runs each)")
    for h in ("call", "p50 ms", "p90 ms", "p50 / baseline"):
        table.add_column(h, justify="right")
    for what, p50, p90 in rows:
        table.add_row(what, f"{p50:.1f}", f"{p90:.1f}", f"{p50 / base:.1f}x")
    Console().print(table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--start-up", type=int, default=30, metavar="RUNS",
                    help="runs per tool call of the start-up table (0: skip it)")
    ns = ap.parse_args()
    actions = load_corpus(CORPUS / "dangerous.jsonl") + load_corpus(CORPUS / "benign.jsonl")
    gov = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"), resolver=table_resolver)
    with tempfile.TemporaryDirectory() as tmp:
        ws = str(make_workspace(Path(tmp)))
        results: dict[str, list[tuple[float, float, float, int]]] = {"cold": [], "warm": []}
        for _ in range(ns.repeats):
            parse_command.cache_clear()
            for mode in ("cold", "warm"):
                t = time.perf_counter()
                lat, correct = one_pass(gov, actions, ws)
                wall = time.perf_counter() - t
                results[mode].append((len(actions) / wall, percentile(lat, 0.5), percentile(lat, 0.99), correct))
    rows = []
    for mode, rs in results.items():
        rows.append((mode, len(actions), statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                     statistics.median(r[2] for r in rs), min(r[3] for r in rs) / len(actions)))
    header = ("pass", "actions", "decisions/s", "p50 ms", "p99 ms", "judged as labelled")
    try:
        from rich.console import Console
        from rich.table import Table
        table = Table(title=f"governor decide() on the corpus ({ns.repeats} repeats, medians)")
        for h in header:
            table.add_column(h, justify="right")
        for r in rows:
            table.add_row(r[0], str(r[1]), f"{r[2]:,.0f}", f"{r[3]:.3f}", f"{r[4]:.3f}", f"{r[5]:.1%}")
        Console().print(table)
    except ImportError:
        print(" | ".join(header))
        for r in rows:
            print(f"{r[0]} | {r[1]} | {r[2]:,.0f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.1%}")
    lines = [a["args"]["command"] for a in actions if a["tool"] == "shell"]
    print(f"shell lines parsed without bashlex (fast path): {sum(fast_parse(x) is not None for x in lines)} "
          f"of {len(lines)}")
    if ns.start_up:
        print_start_up(start_up(ns.start_up), ns.start_up)
    return 0


if __name__ == "__main__":
    sys.exit(main())
