"""Benchmark: objectives/s end to end through swarmd vs plain RQ, same Redis.

    python bench/queue_throughput.py [--n 300] [--repeats 5]

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
final.  CPU time per item is measured too (:func:`cpu_s`): on a shared
machine the wall-clock rates swing with other load, CPU seconds per item
much less.  One untimed warm-up run of ``--n``/5 items per side first (imports,
connections), then ``--repeats`` runs per side, alternating swarmd and plain
RQ so that both see the same load on a shared machine.  Printed: median
objectives/s per side, the ratio swarmd / plain RQ (target ≥ 0.8) and the
ratio of each pair of runs.
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

import psutil  # noqa: E402
from redis import Redis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rq import Queue  # noqa: E402

from swarmd import cli  # noqa: E402
from swarmd import constants as K  # noqa: E402
from swarmd.daemon.redis_server import ensure_redis  # noqa: E402
from swarmd.objectives import FINAL_STATES  # noqa: E402
from swarmd.testing.configs import with_fast_provider  # noqa: E402

BIN = Path(sys.executable).parent


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by processes ``pids`` and
    their live children."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class Run:
    """One timed run: ``seconds`` of wall clock from the first submit to the
    last item final, and ``cpu_s``: CPU seconds of the side's processes
    (daemon and its worker, or the RQ worker; the Redis server; this
    process's submit or enqueue calls, not its polling) over that time."""

    def __init__(self, seconds: float, cpu_s: float):
        self.seconds, self.cpu_s = seconds, cpu_s


def plain_rq(url: str, n: int, redis_pid: int) -> Run:
    """n no-op jobs: enqueue → SimpleWorker → finished."""
    redis = Redis.from_url(url)
    queue = Queue("bench", connection=redis)
    worker = subprocess.Popen([str(BIN / "rq"), "worker", "-w", "rq.SimpleWorker", "--url", url, "-q", "bench"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)                                   # worker up before the clock starts
    try:
        cpu0 = cpu_s([worker.pid, redis_pid])
        start, own = time.perf_counter(), time.process_time()
        jobs = [queue.enqueue("operator.add", 1, i) for i in range(n)]
        own = time.process_time() - own
        watched = [j.key for j in jobs[-1:] + jobs[::max(1, n // 20)]]
        while True:                                   # one pipeline per poll, as on the swarmd side
            pipe = redis.pipeline(transaction=False)
            for key in watched:
                pipe.hget(key, "status")
            if all(s == b"finished" for s in pipe.execute()):
                break
            time.sleep(0.01)
        return Run(time.perf_counter() - start, cpu_s([worker.pid, redis_pid]) - cpu0 + own)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def check_alive(daemon: subprocess.Popen, log: Path) -> None:
    """Raise (with the end of its log) when the daemon has exited."""
    if daemon.poll() is not None:
        raise RuntimeError(f"swarmd exited with {daemon.returncode}:\n{log.read_text()[-3000:]}")


def swarmd_run(url: str, data: Path, config: Path, n: int, run: int, pids: list[int],
               alive=lambda: None) -> Run:
    """n objectives: submit pipeline → daemon → worker → final state
    (``pids``: the daemon's and Redis's; ``alive`` raises when the daemon has died)."""
    redis = Redis.from_url(url)
    batch = data / f"batch-{run}.jsonl"
    batch.write_text("".join(json.dumps({"id": f"q{run}-{i}", "action": "classify", "input": f"item {i}",
                                         "labels": "feat,fix"}) + "\n" for i in range(n)))
    cpu0 = cpu_s(pids)
    start, own = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):      # swarmctl submit's code path, in this process
        assert cli.main(["--config", str(config), "submit", "--file", str(batch), "--redis-url", url]) == 0
    own = time.process_time() - own
    keys = [K.objective_key(f"q{run}-{i}") for i in range(n)]
    while True:
        pipe = redis.pipeline(transaction=False)
        for key in keys[-1:] + keys[::max(1, n // 20)]:
            pipe.hget(key, "state")
        if all(s and s.decode() in FINAL_STATES for s in pipe.execute()):
            break
        alive()
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    used = cpu_s(pids) - cpu0 + own
    states = [redis.hget(k, "state") for k in keys]
    assert all(s and s.decode() in FINAL_STATES for s in states), "not all objectives final"
    return Run(elapsed, used)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="items per run (default 300)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        handle = ensure_redis(None, tmp)
        redis_pid = int(Redis.from_url(handle.url).info("server")["process_id"])
        config = tmp / "llm_config.yaml"
        config.write_text(with_fast_provider((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text(), "echo"))
        data = tmp / "data"
        log = tmp / "swarmd.log"
        daemon = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", "1", "--data-dir", str(data),
                                   "--config", str(config), "--redis-url", handle.url],
                                  stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        try:
            redis = Redis.from_url(handle.url)
            while not redis.exists(K.HEARTBEAT):
                check_alive(daemon, log)
                time.sleep(0.1)
            time.sleep(2.0)                            # worker up before the clock starts
            alive = lambda: check_alive(daemon, log)   # noqa: E731
            pids = [daemon.pid, redis_pid]
            swarmd_run(handle.url, data, config, max(1, args.n // 5), -1, pids, alive)     # warm-up, not timed
            plain_rq(handle.url, max(1, args.n // 5), redis_pid)
            swarmd_runs, rq_runs = [], []
            for r in range(args.repeats):              # interleaved: both sides see the same load
                swarmd_runs.append(swarmd_run(handle.url, data, config, args.n, r, pids, alive))
                rq_runs.append(plain_rq(handle.url, args.n, redis_pid))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            handle.stop()
    rate = {side: [args.n / r.seconds for r in runs] for side, runs in (("s", swarmd_runs), ("b", rq_runs))}
    cpu = {side: [1000 * r.cpu_s / args.n for r in runs] for side, runs in (("s", swarmd_runs), ("b", rq_runs))}
    s, b = statistics.median(rate["s"]), statistics.median(rate["b"])
    cs, cb = statistics.median(cpu["s"]), statistics.median(cpu["b"])
    table = Table(title=f"end-to-end throughput, {args.n} items per run, {args.repeats} runs per side "
                        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for col in ("path", "median items/s", "runs (items/s)", "median CPU ms / item", "runs (CPU ms / item)"):
        table.add_column(col)
    table.add_row("swarmd (submit → daemon → SimpleWorker → SQLite)", f"{s:.1f}",
                  ", ".join(f"{x:.1f}" for x in rate["s"]), f"{cs:.2f}", ", ".join(f"{x:.2f}" for x in cpu["s"]))
    table.add_row("plain RQ no-op (enqueue → SimpleWorker → result)", f"{b:.1f}",
                  ", ".join(f"{x:.1f}" for x in rate["b"]), f"{cb:.2f}", ", ".join(f"{x:.2f}" for x in cpu["b"]))
    console = Console(width=max(Console().width, 150))
    console.print(table)
    console.print(f"swarmd / plain RQ items/s: {s / b:.2f}× (target ≥ 0.8); per pair of runs: "
                  + ", ".join(f"{x / y:.2f}" for x, y in zip(rate["s"], rate["b"])))
    console.print(f"plain RQ / swarmd CPU per item: {cb / cs:.2f}× (the throughput ratio a CPU-bound machine "
                  f"would show, unaffected by other load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
