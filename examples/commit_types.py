"""The main job: classify real commit messages through the whole swarmd path.

    python examples/commit_types.py [--n 200] [--data-dir data/main-job] [--workers 1]

1. starts ``swarmd --workers N`` (which starts its own Redis when none is
   configured or running on localhost);
2. submits the first ``--n`` messages of ``examples/commits-commitizen.jsonl``
   as ``classify`` objectives with ``swarmctl submit --file ... --wait``
   (progress bar until all are final);
3. prints accuracy against the authors' labels, the share accepted at
   LOCAL_FAST, escalations, unresolved count and cost by tier, read from the
   daemon's SQLite store;
4. stops everything it started (SIGTERM to the daemon, which stops its workers
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="messages to classify (default 200, max 600)")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "main-job"), help="swarmd data directory")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--config", default=str(ROOT / "llm_config.yaml"))
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    items = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()][:args.n]
    label_set = ",".join(sorted({json.loads(l)["label"] for l in DATA.read_text().splitlines() if l.strip()}))
    run = time.strftime("%Y%m%d%H%M%S")
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    batch = data_dir / f"objectives-{run}.jsonl"
    labels = {}
    with open(batch, "w") as fh:
        for it in items:
            oid = f"{it['id']}-{run}"
            labels[oid] = it["label"]
            fh.write(json.dumps({"id": oid, "action": "classify", "input": it["text"], "labels": label_set}) + "\n")

    env = dict(os.environ)
    env.pop("REDIS_URL", None) if "SWARMD_KEEP_REDIS_URL" not in env else None
    console.print(f"starting swarmd with {args.workers} worker(s); data dir {data_dir}")
    (data_dir / "redis.url").unlink(missing_ok=True)
    daemon = subprocess.Popen([str(BIN / "swarmd"), "--workers", str(args.workers), "--data-dir", str(data_dir),
                               "--config", args.config], env=env, stderr=open(data_dir / "swarmd.stderr", "ab"))
    try:
        wait_for_daemon(data_dir, daemon)
        start = time.perf_counter()
        rc = subprocess.call([str(BIN / "swarmctl"), "--config", args.config, "--data-dir", str(data_dir),
                              "submit", "--file", str(batch), "--wait"], env=env)
        elapsed = time.perf_counter() - start
        if rc not in (0, 1):
            return rc
        time.sleep(1.5)   # let the daemon persist the last events
        summary = report(data_dir / "memory.db", list(labels), labels, Console())
        summary["seconds"] = round(elapsed, 1)
        summary["objectives_per_s"] = round(len(items) / elapsed, 2)
        Console().print(f"{len(items)} objectives in {elapsed:.1f}s ({len(items) / elapsed:.2f} objectives/s); "
                        f"log: {data_dir / 'daemon_hybrid.log'}")
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
