"""Cost of a durable objective stream: swarmd's own Redis with ``appendfsync always`` vs ``everysec``.

    python bench/redis_fsync.py [--n 2000] [--objectives 2000] [--workers 2] [--dir DIR]

swarmd runs its own redis-server with ``appendfsync everysec``: a killed
redis-server loses nothing it acknowledged, a kernel crash or power cut up to
~2 s of writes (:data:`swarmd.daemon.redis_server.DURABILITY`).  ``always``
fsyncs the append-only file before each reply, closing that window.  Same
run, same disk (``--dir``, default a temporary directory under $TMPDIR; the
file system is printed), both modes:

* ``submit x1``: ``--n`` sequential ``swarmctl submit`` transactions of one
  objective (MULTI: HSET of the state mirror + XADD to the objective stream),
  one client: transactions/s and p50/p99 latency.
* ``submit x500``: the same in transactions of 500 objectives: objectives/s.
* ``end to end``: ``--objectives`` echo-provider objectives through a real
  ``swarmd --workers W`` (its own Redis, switched with ``CONFIG SET
  appendfsync``), submitted at once: objectives/s from submit to all final.

Printed: one row per workload, both modes, and the ratio always / everysec.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak  # noqa: E402  (strips bench/ from sys.path: bench/queue_throughput.py would shadow the stdlib's)

import redis  # noqa: E402

from swarmd import constants as K  # noqa: E402


def raw_redis(workdir: Path, mode: str) -> tuple[subprocess.Popen, redis.Redis]:
    sock = workdir / "r.sock"
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--unixsocket", str(sock), "--dir",
                             str(workdir), "--appendonly", "yes", "--appendfsync", mode, "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(unix_socket_path=str(sock))
    for _ in range(200):
        try:
            client.ping()
            return proc, client
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def submit_tx(client: redis.Redis, start: int, size: int) -> None:
    pipe = client.pipeline(transaction=True)
    for i in range(start, start + size):
        pipe.hset(K.objective_key(f"b-{i}"), mapping={"state": "submitted", "action": "classify"})
        pipe.xadd(K.OBJECTIVE_STREAM, {"objective": '{"id": "b-%d", "action": "classify", "input": "x"}' % i})
    pipe.execute()


def raw(workdir: Path, mode: str, n: int) -> dict:
    sub = workdir / mode
    sub.mkdir()
    proc, client = raw_redis(sub, mode)
    try:
        lat = []
        for i in range(n):
            t = time.perf_counter()
            submit_tx(client, i, 1)
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        for j in range(20):
            submit_tx(client, n + j * 500, 500)
        batch_s = time.perf_counter() - t
    finally:
        proc.kill()
        proc.wait()
    return {"tx_s": n / sum(lat), "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": statistics.quantiles(lat, n=100)[98] * 1000, "batch_obj_s": 20 * 500 / batch_s}


def end_to_end(workdir: Path, args) -> dict:
    workdir.mkdir()
    ns = argparse.Namespace(workers=args.workers, restart_sec=1.0)
    run = soak.Soak(ns, workdir)
    os.environ.pop("REDIS_URL", None)
    out = {}
    try:
        run.start()
        warm = [{"id": "warm-e", "action": "classify", "input": "fix: warm up", "labels": "feat,fix"}]
        run.submit(warm)
        run.wait_all_final(["warm-e"], time.monotonic() + 300)
        for mode in ("everysec", "always"):
            run.client().config_set("appendfsync", mode)
            rows = [dict(r, id=f"{mode}-{r['id']}") for r in soak.objectives(args.objectives, 0, 1)]
            t = time.perf_counter()
            run.submit(rows)
            if not run.wait_all_final([r["id"] for r in rows], time.monotonic() + 900):
                raise RuntimeError(f"{mode}: objectives did not finish in 900 s")
            out[mode] = len(rows) / (time.perf_counter() - t)
    finally:
        run.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="single-objective submit transactions per mode")
    ap.add_argument("--objectives", type=int, default=2000, help="echo objectives end to end per mode")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", help="where the append-only files go (default: a temporary directory)")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="swarmd-fsync-", dir=args.dir))
    try:
        fs = subprocess.run(["df", "-T", str(base)], capture_output=True, text=True).stdout.splitlines()[-1].split()
        results = {mode: raw(base, mode, args.n) for mode in ("everysec", "always")}
        e2e = end_to_end(base / "e2e", args) if args.objectives else {}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nappendfsync always vs everysec; append-only files on {fs[0]} ({fs[1]}) at {base.parent}")
    rows = [("submit x1: transactions/s", "tx_s", "{:.0f}"), ("submit x1: p50 latency (ms)", "p50_ms", "{:.3f}"),
            ("submit x1: p99 latency (ms)", "p99_ms", "{:.3f}"),
            ("submit x500: objectives/s", "batch_obj_s", "{:.0f}")]
    print(f"  {'workload':<40} {'everysec':>10} {'always':>10} {'always/everysec':>16}")
    for label, key, fmt in rows:
        a, b = results["everysec"][key], results["always"][key]
        print(f"  {label:<40} {fmt.format(a):>10} {fmt.format(b):>10} {b / a:>16.2f}")
    if e2e:
        a, b = e2e["everysec"], e2e["always"]
        print(f"  {f'end to end ({args.workers} workers, echo): objectives/s':<40} {a:>10.1f} {b:>10.1f} {b / a:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
