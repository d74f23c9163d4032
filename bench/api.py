"""Benchmark: the HTTP API's read paths over a store of many objectives.

    python bench/api.py [--objectives 100000] [--requests 500]

Builds a store with ``--objectives`` objectives (90% done, 10% failed, in one
transaction per 10,000), serves the API in this process (:class:`swarmd.api.server.ApiServer`
on a free loopback port; no Redis is needed for these paths: the store answers)
and times, over real HTTP with one httpx client:

* ``GET /api/v1/objectives/{id}`` of random ids;
* ``GET /api/v1/objectives?state=failed&limit=50`` (a list of 50 with a state filter);
* the baseline: ``GET /api/v1/openapi.json``'s twin with no store work, an unknown
  path answered 404 by the router after auth (the HTTP + auth floor of this machine now).

Printed: a table of p50 / p99 per path (ms) and each p99's ratio to the
baseline's, measured in the same run.  Issue 23's targets: objective p99 <= 20 ms,
list p99 <= 50 ms with 100,000 objectives.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT / "src")   # not bench/: its queue.py would shadow the stdlib queue

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.api.server import ApiServer  # noqa: E402
from swarmd.config import load_config  # noqa: E402
from swarmd.objectives import Objective  # noqa: E402
from swarmd.daemon.store import Store  # noqa: E402


def fill(db: Path, n: int) -> list[str]:
    """``n`` objectives in the store at ``db``, finished; returns their ids."""
    store = Store(db)
    ids = [f"bench-{i:07d}" for i in range(n)]
    now = time.time() - n
    try:
        for start in range(0, n, 10_000):
            chunk = ids[start:start + 10_000]
            store.add_queued_many([Objective(id=oid, action="classify", input=f"commit message {oid}",
                                             labels=["feat", "fix"], submitted_at=now + start + i)
                                   for i, oid in enumerate(chunk)])
            store.apply_events([(f"e-{oid}", "finished", oid, {
                "state": "failed" if (start + i) % 10 == 0 else "done", "action": "classify",
                "result": {"answer": "feat", "confidence": 0.9, "tier": "LOCAL_FAST", "model": "bench",
                           "cost_usd": 0.0, "escalations": 0}, "attempts": []}) for i, oid in enumerate(chunk)])
    finally:
        store.close()
    return ids


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    """Milliseconds per GET of each path (each must answer 200 or 404)."""
    out = []
    for path in paths:
        t = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code in (200, 404), (path, r.status_code, r.text[:200])
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        config_text = (ROOT / "src" / "swarmd" / "llm_config.yaml").read_text().replace("  listen: 127.0.0.1:8765\n",
                                                                     "  listen: 127.0.0.1:0\n")
        (data / "llm_config.yaml").write_text(config_text)
        config = load_config(data / "llm_config.yaml")
        t = time.perf_counter()
        ids = fill(data / "memory.db", args.objectives)
        print(f"store of {len(ids)} objectives built in {time.perf_counter() - t:.1f} s")
        server = ApiServer(config, data, data / "memory.db", lambda: "redis://127.0.0.1:9/0")
        url = server.start()
        token = (data / "api.token").read_text().strip()
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
                rng = random.Random(23)
                timed(c, ["/api/v1/nosuch"] * 20 + [f"/api/v1/objectives/{rng.choice(ids)}" for _ in range(20)])
                runs = {
                    "baseline: 404 after auth": ["/api/v1/nosuch"] * args.requests,
                    "GET /objectives/{id}": [f"/api/v1/objectives/{rng.choice(ids)}" for _ in range(args.requests)],
                    "GET /objectives?state=failed&limit=50": ["/api/v1/objectives?state=failed&limit=50"]
                    * args.requests,
                }
                results = {name: timed(c, paths) for name, paths in runs.items()}
        finally:
            server.stop()
    base = p(results["baseline: 404 after auth"], 99)
    table = Table("path", "p50 ms", "p99 ms", "p99 / baseline", "target p99",
                  title=f"API reads, {args.objectives} objectives, {args.requests} requests each")
    targets = {"GET /objectives/{id}": "<= 20 ms", "GET /objectives?state=failed&limit=50": "<= 50 ms"}
    for name, values in results.items():
        table.add_row(name, f"{p(values, 50):.2f}", f"{p(values, 99):.2f}", f"{p(values, 99) / base:.2f}",
                      targets.get(name, "-"))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
