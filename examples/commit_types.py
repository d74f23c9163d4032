"""The main job: classify real commit messages through the whole swarmd path, and show the learning loop.

    python examples/commit_types.py [--n 240] [--offset 300] [--review 120] [--data-dir data/main-job] [--workers 1]

1. starts ``swarmd --workers N`` (which starts its own Redis when none is
   configured or running on localhost) on a fresh store in ``--data-dir``;
2. phase 1: submits the first half of ``--n`` messages of
   ``examples/commits-commitizen.jsonl`` from ``--offset`` on (default
   300-419: messages the shipped classify calibration was not fitted on) as
   ``classify`` objectives with ``swarmctl submit --file ... --wait``;
3. as a reviewer would, feeds back the authors' labels of ``--review`` of
   them (``swarmctl feedback --file``), then runs ``swarmctl memory
   consolidate`` (the quality gate refitted from those verified answers, swapped
   in only if better on held-out ones) and ``swarmctl memory stats``;
4. phase 2: submits the second half (default 420-539), which the workers
   route with the gate now in use;
5. prints accuracy, the share accepted at LOCAL_FAST, escalations,
   unresolved and cost for all objectives, and per phase the local coverage
   (answered without escalation) and the measured false-accept rate of
   those local answers against the authors' labels, read from the daemon's
   SQLite store;
6. stops everything it started (SIGTERM to the daemon, which stops its workers
   and its Redis).

The data (600 commit messages from commitizen-tools/commitizen, MIT licence)
is described in ``examples/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from swarmd.store.db import connect

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "commits-commitizen.jsonl"
BIN = Path(sys.executable).parent


def wait_for_daemon(data_dir: Path, proc: subprocess.Popen, timeout_s: float = 120) -> str:
    """Block until the daemon has written its Redis URL and a heartbeat; return the URL."""
    from redis import Redis
    deadline = time.monotonic() + timeout_s
    url_file = data_dir / "redis.url"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"swarmd exited early with code {proc.returncode}; see {data_dir / 'daemon_hybrid.log'}")
        if url_file.exists():
            url = url_file.read_text().strip()
            try:
                if Redis.from_url(url).exists("swarmd:heartbeat"):
                    return url
            except Exception:
                pass
        time.sleep(0.3)
    raise SystemExit("swarmd did not come up in time")


def report(db: Path, ids: list[str], labels: dict[str, str], console: Console) -> dict:
    conn = connect(db, readonly=True)
    marks = ",".join("?" * len(ids))
    rows = [dict(r) for r in conn.execute(f"SELECT * FROM objectives WHERE id IN ({marks})", ids)]
    ledger = [dict(r) for r in conn.execute(f"SELECT * FROM ledger WHERE objective_id IN ({marks})", ids)]
    n = len(rows)
    correct = sum(r["answer"] == labels[r["id"]] for r in rows)
    done_fast = sum(r["state"] == "done" and r["tier"] == "LOCAL_FAST" for r in rows)
    summary = {
        "objectives": n,
        "accuracy": correct / n if n else 0.0,
        "accepted_at_LOCAL_FAST": done_fast / n if n else 0.0,
        "escalations": sum(r["escalations"] or 0 for r in rows),
        "unresolved": sum(r["state"] == "unresolved" for r in rows),
        "failed": sum(r["state"] == "failed" for r in rows),
        "cost_by_tier": {},
    }
    for row in ledger:
        tier = summary["cost_by_tier"].setdefault(row["tier"], {"calls": 0, "cost_usd": 0.0})
        tier["calls"] += 1
        tier["cost_usd"] += row["cost_usd"]
    table = Table(title=f"{n} commit messages classified by swarmd")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("accuracy vs the authors' labels", f"{summary['accuracy']:.3f}")
    table.add_row("accepted at LOCAL_FAST", f"{summary['accepted_at_LOCAL_FAST']:.3f}")
    table.add_row("escalations", str(summary["escalations"]))
    table.add_row("unresolved", str(summary["unresolved"]))
    table.add_row("failed", str(summary["failed"]))
    for tier, v in sorted(summary["cost_by_tier"].items()):
        table.add_row(f"cost {tier} ({v['calls']} calls)", f"${v['cost_usd']:.6f}")
    console.print(table)
    return summary


def phase_row(conn, ids: list[str], labels: dict[str, str]) -> dict:
    """Local coverage and false-accept of local answers for one phase's objectives."""
    marks = ",".join("?" * len(ids))
    rows = [dict(r) for r in conn.execute(f"SELECT id, state, tier, answer FROM objectives WHERE id IN ({marks})", ids)]
    local = [r for r in rows if r["state"] == "done" and r["tier"] in ("LOCAL_FAST", "MEMORY")]
    wrong = sum(r["answer"] != labels[r["id"]] for r in local)
    return {"objectives": len(rows), "local_coverage": len(local) / len(rows) if rows else 0.0,
            "local_answers": len(local), "local_wrong": wrong,
            "false_accept": wrong / len(local) if local else None,
            "accuracy": sum(r["answer"] == labels[r["id"]] for r in rows) / len(rows) if rows else 0.0}


def loop_report(db: Path, phases: list[tuple[str, list[str]]], labels: dict[str, str], console: Console) -> dict:
    """The learning loop's before/after table (see the module docstring, step 5)."""
    from swarmd.memory.stats import wilson_upper

    conn = connect(db, readonly=True)
    table = Table(title="the learning loop: quality gate before and after feedback + consolidation")
    for col in ("phase", "objectives", "local coverage", "false-accept of local answers (95% upper)", "accuracy"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    out = {}
    for name, ids in phases:
        row = out[name] = phase_row(conn, ids, labels)
        fa = "–" if row["false_accept"] is None else (
            f"{row['local_wrong']}/{row['local_answers']} = {100 * row['false_accept']:.1f}% "
            f"({100 * wilson_upper(row['local_wrong'], row['local_answers']):.1f}%)")
        table.add_row(name, str(row["objectives"]), f"{100 * row['local_coverage']:.1f}%", fa, f"{row['accuracy']:.3f}")
    console.print(table)
    return out


def swarmctl(args, env, *argv: str) -> int:
    """Run one ``swarmctl`` command against the job's daemon; returns its exit code."""
    return subprocess.call([str(BIN / "swarmctl"), "--config", args.config, "--data-dir", str(args.data_dir), *argv],
                           env=env)


def write_batch(path: Path, items: list[dict], run: str, label_set: str, labels: dict[str, str]) -> list[str]:
    """Write ``items`` as a JSONL batch of classify objectives; returns their ids (labels noted in ``labels``)."""
    ids = []
    with open(path, "w") as fh:
        for it in items:
            oid = f"{it['id']}-{run}"
            labels[oid] = it["label"]
            ids.append(oid)
            fh.write(json.dumps({"id": oid, "action": "classify", "input": it["text"], "labels": label_set}) + "\n")
    return ids


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=240, help="messages to classify, in two phases (default 240)")
    parser.add_argument("--offset", type=int, default=300,
                        help="first message (default 300: not in the shipped calibration's fitting slice 0-299)")
    parser.add_argument("--review", type=int, default=120,
                        help="phase-1 objectives a reviewer gives the authors' label for (default 120, all of "
                             "them: duplicates aside, at least memory.min_verified = 100 are needed for a refit)")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "main-job"), help="swarmd data directory")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--config", default=str(ROOT / "src" / "swarmd" / "llm_config.yaml"))
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    lines = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    items = lines[args.offset:args.offset + args.n]
    label_set = ",".join(sorted({it["label"] for it in lines}))
    run = time.strftime("%Y%m%d%H%M%S")
    data_dir = Path(args.data_dir).absolute()      # swarmd's own redis-server runs in a directory under it
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob("memory.db*"):     # a fresh store: this run's numbers depend on this run only
        stale.unlink()
    labels: dict[str, str] = {}
    half = len(items) // 2
    first = write_batch(data_dir / f"objectives-{run}-1.jsonl", items[:half], run, label_set, labels)
    second = write_batch(data_dir / f"objectives-{run}-2.jsonl", items[half:], run, label_set, labels)
    reviews = data_dir / f"feedback-{run}.jsonl"
    reviews.write_text("".join(json.dumps({"id": oid, "answer": labels[oid]}) + "\n" for oid in first[:args.review]))

    env = dict(os.environ)
    env.pop("REDIS_URL", None) if "SWARMD_KEEP_REDIS_URL" not in env else None
    console.print(f"starting swarmd with {args.workers} worker(s); data dir {data_dir}")
    (data_dir / "redis.url").unlink(missing_ok=True)
    daemon = subprocess.Popen([str(BIN / "swarmd"), "--workers", str(args.workers), "--data-dir", str(data_dir),
                               "--config", args.config], env=env, stderr=open(data_dir / "swarmd.stderr", "ab"))
    try:
        wait_for_daemon(data_dir, daemon)
        start = time.perf_counter()
        console.print(f"phase 1: messages {args.offset}-{args.offset + half - 1}")
        rc = swarmctl(args, env, "submit", "--file", str(data_dir / f"objectives-{run}-1.jsonl"), "--wait")
        if rc not in (0, 1):
            return rc
        time.sleep(1.5)   # let the daemon persist the last events
        console.print(f"a reviewer gives the authors' labels of {min(args.review, half)} phase-1 objectives")
        for argv_ in (("feedback", "--file", str(reviews)), ("memory", "consolidate"), ("memory", "stats")):
            rc = swarmctl(args, env, *argv_)
            if rc != 0:
                return rc
        console.print(f"phase 2: messages {args.offset + half}-{args.offset + len(items) - 1}")
        rc = swarmctl(args, env, "submit", "--file", str(data_dir / f"objectives-{run}-2.jsonl"), "--wait")
        elapsed = time.perf_counter() - start
        if rc not in (0, 1):
            return rc
        time.sleep(1.5)
        summary = report(data_dir / "memory.db", list(labels), labels, Console())
        summary["loop"] = loop_report(data_dir / "memory.db", [("1: before feedback", first),
                                                               ("2: after consolidation", second)], labels, Console())
        summary["seconds"] = round(elapsed, 1)
        summary["objectives_per_s"] = round(len(items) / elapsed, 2)
        Console().print(f"{len(items)} objectives in {elapsed:.1f}s ({len(items) / elapsed:.2f} objectives/s, "
                        f"feedback and consolidation included); log: {data_dir / 'daemon_hybrid.log'}")
        (data_dir / f"summary-{run}.json").write_text(json.dumps(summary, indent=2))
        return 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
        console.print(f"swarmd stopped (exit {daemon.returncode})")


if __name__ == "__main__":
    sys.exit(main())
