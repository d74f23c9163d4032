"""Benchmark: objectives/s end to end through swarmd vs plain RQ, same Redis.

    python bench/queue.py [--n 300] [--repeats 3]

* **swarmd**: ``swarmd --workers 1`` with LOCAL_FAST switched to the ``echo``
  provider (answers instantly, no model), so what is measured is swarmd's own
  path: ``swarmctl submit``'s code (validation + one pipeline, called in this
  process, as the baseline enqueues in this process) → stream → daemon admission → RQ enqueue
  → worker job → event stream → SQLite persistence → final state in Redis.
* **plain RQ** (baseline): ``Queue.enqueue`` of a no-op job (``operator.add``)
  → one ``rq worker -w rq.SimpleWorker`` (the worker class swarmd uses) →
  result stored, on the same Redis.

Both sides have their worker running before the clock starts; each run
submits ``--n`` items at once and stops the clock when the last one is
final.  Printed: median objectives/s over ``--repeats`` runs per side and the
ratio swarmd / plain RQ (target ≥ 0.6).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is named like the stdlib module `queue`: keep its folder off sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))

from redis import Redis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rq import Queue  # noqa: E402

from swarmd import cli  # noqa: E402
from swarmd import constants as K  # noqa: E402
from swarmd.daemon.redis_server import ensure_redis, free_port  # noqa: E402
from swarmd.objectives import FINAL_STATES  # noqa: E402

BIN = Path(sys.executable).parent


def plain_rq(url: str, n: int) -> float:
    """Seconds for n no-op jobs: enqueue → SimpleWorker → finished."""
    redis = Redis.from_url(url)
    queue = Queue("bench", connection=redis)
    worker = subprocess.Popen([str(BIN / "rq"), "worker", "-w", "rq.SimpleWorker", "--url", url, "-q", "bench"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)                                   # worker up before the clock starts
    try:
        start = time.perf_counter()
        jobs = [queue.enqueue("operator.add", 1, i) for i in range(n)]
        last = jobs[-1]
        while True:
            if last.get_status(refresh=True) == "finished" and all(
                    j.get_status(refresh=True) == "finished" for j in jobs[::max(1, n // 20)]):
                break
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def swarmd_run(url: str, data: Path, config: Path, n: int, run: int) -> float:
    """Seconds for n objectives: submit pipeline → daemon → worker → final state."""
    redis = Redis.from_url(url)
    batch = data / f"batch-{run}.jsonl"
    batch.write_text("".join(json.dumps({"id": f"q{run}-{i}", "action": "classify", "input": f"item {i}",
                                         "labels": "feat,fix"}) + "\n" for i in range(n)))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):      # swarmctl submit's code path, in this process
        assert cli.main(["--config", str(config), "submit", "--file", str(batch), "--redis-url", url]) == 0
    keys = [K.objective_key(f"q{run}-{i}") for i in range(n)]
    while True:
        pipe = redis.pipeline(transaction=False)
        for key in keys[-1:] + keys[::max(1, n // 20)]:
            pipe.hget(key, "state")
        if all(s and s.decode() in FINAL_STATES for s in pipe.execute()):
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    states = [redis.hget(k, "state") for k in keys]
    assert all(s and s.decode() in FINAL_STATES for s in states), "not all objectives final"
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="items per run (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        handle = ensure_redis(None, tmp)
        config = tmp / "llm_config.yaml"
        config.write_text((ROOT / "llm_config.yaml").read_text().replace(
            "    - provider: llama_cpp\n", "    - provider: echo\n"))
        data = tmp / "data"
        daemon = subprocess.Popen([str(BIN / "swarmd"), "--workers", "1", "--data-dir", str(data),
                                   "--config", str(config), "--redis-url", handle.url],
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "swarmd.log", "wb"))
        try:
            redis = Redis.from_url(handle.url)
            while not redis.exists(K.HEARTBEAT):
                time.sleep(0.1)
            time.sleep(2.0)                            # worker up before the clock starts
            swarmd_runs = [args.n / swarmd_run(handle.url, data, config, args.n, r) for r in range(args.repeats)]
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        rq_runs = [args.n / plain_rq(handle.url, args.n) for _ in range(args.repeats)]
        handle.stop()
    s, b = statistics.median(swarmd_runs), statistics.median(rq_runs)
    table = Table(title=f"end-to-end throughput, {args.n} items per run, {args.repeats} runs")
    for col in ("path", "median items/s", "runs (items/s)"):
        table.add_column(col)
    table.add_row("swarmd (submit → daemon → SimpleWorker → SQLite)", f"{s:.1f}", ", ".join(f"{x:.1f}" for x in swarmd_runs))
    table.add_row("plain RQ no-op (enqueue → SimpleWorker → result)", f"{b:.1f}", ", ".join(f"{x:.1f}" for x in rq_runs))
    console = Console()
    console.print(table)
    console.print(f"swarmd / plain RQ: {s / b:.2f}× (target ≥ 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
