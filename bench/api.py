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

With a Redis (swarmd's own ``redis-server``, started here in the temporary data
directory by :func:`swarmd.daemon.redis_server.ensure_redis`; no daemon runs, so
nothing consumes what is submitted), three more tables (``--parts``):

* ``submit``: 1,000 objectives (``--batch``) submitted ``--runs`` times each way:
  ``swarmctl submit --file`` (a subprocess, the baseline: what an operator runs;
  and in this process, without the interpreter's start-up and imports), one
  ``POST /api/v1/objectives`` of the list, and 1,000 POSTs of one; median s and
  objectives/s; ratio = API rate / swarmctl rate (target >= 0.8);
* ``sse``: ``--events`` state changes (a worker's ``started`` event appended with
  :func:`swarmd.queue.emit`), each timed until ``GET /api/v1/events`` delivers it,
  against the floor of the same run: a Redis ``XREAD BLOCK`` client on the same
  stream; median / p99 s (target <= 0.5 s);
* ``dashboard``: the dashboard's objectives page over the 100,000-objective store in
  headless chromium (chromedriver + selenium; loopback only, fresh profile),
  ``--page-loads`` loads after one warm-up: the navigation's ``loadEventEnd`` (ms
  from navigation start: HTML received, parsed, styles and scripts loaded) and the
  wall time of ``driver.get``, against ``/login`` (no store work) in the same browser
  (target <= 1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT / "src")   # not bench/: its queue.py would shadow the stdlib queue

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import redis as redis_lib  # noqa: E402

from swarmd import queue as Q  # noqa: E402
from swarmd.api.server import ApiServer  # noqa: E402
from swarmd.cli import swarmctl  # noqa: E402
from swarmd.config import load_config  # noqa: E402
from swarmd.daemon.redis_server import ensure_redis, write_url_file  # noqa: E402
from swarmd.objectives import Objective  # noqa: E402
from swarmd.testing.browser import headless_chromium  # noqa: E402
from swarmd.daemon.store import Store  # noqa: E402

PARTS = ("reads", "submit", "sse", "dashboard")


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


def reads(c: httpx.Client, ids: list[str], requests: int, objectives: int) -> Table:
    """The read paths' table (module docstring)."""
    rng = random.Random(23)
    timed(c, ["/api/v1/nosuch"] * 20 + [f"/api/v1/objectives/{rng.choice(ids)}" for _ in range(20)])
    runs = {
        "baseline: 404 after auth": ["/api/v1/nosuch"] * requests,
        "GET /objectives/{id}": [f"/api/v1/objectives/{rng.choice(ids)}" for _ in range(requests)],
        "GET /objectives?state=failed&limit=50": ["/api/v1/objectives?state=failed&limit=50"] * requests,
    }
    results = {name: timed(c, paths) for name, paths in runs.items()}
    base = p(results["baseline: 404 after auth"], 99)
    table = Table("path", "p50 ms", "p99 ms", "p99 / baseline", "target p99",
                  title=f"API reads, {objectives} objectives, {requests} requests each")
    targets = {"GET /objectives/{id}": "<= 20 ms", "GET /objectives?state=failed&limit=50": "<= 50 ms"}
    for name, values in results.items():
        table.add_row(name, f"{p(values, 50):.2f}", f"{p(values, 99):.2f}", f"{p(values, 99) / base:.2f}",
                      targets.get(name, "-"))
    return table


def _batch(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}-{i:05d}", "action": "classify", "input": f"fix crash number {i} on empty file",
             "labels": ["feat", "fix"]} for i in range(n)]


def submit(c: httpx.Client, data: Path, config: Path, batch: int, runs: int) -> Table:
    """The submission table: ``swarmctl submit --file`` vs the API (module docstring)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("REDIS_URL", None)
    cli = "swarmctl submit --file (baseline)"
    inproc = "swarmctl submit --file, in-process"
    times: dict[str, list[float]] = {cli: [], inproc: [], "POST /objectives, one list": [],
                                     "POST /objectives, one each": []}
    for run in range(runs):   # interleaved, so load drifts hit every way alike
        jsonl = data / f"submit-{run}.jsonl"
        jsonl.write_text("".join(json.dumps(o) + "\n" for o in _batch(f"cli{run}", batch)))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "swarmd.cli", "--config", str(config), "--data-dir", str(data),
                        "submit", "--file", str(jsonl)], env=env, check=True, stdout=subprocess.DEVNULL)
        times[cli].append(time.perf_counter() - t)
        jsonl.write_text("".join(json.dumps(o) + "\n" for o in _batch(f"in{run}", batch)))
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            assert swarmctl.main(["--config", str(config), "--data-dir", str(data), "submit", "--file",
                                  str(jsonl)]) == 0
        times[inproc].append(time.perf_counter() - t)
        body = _batch(f"api{run}", batch)
        t = time.perf_counter()
        r = c.post("/api/v1/objectives", json=body)
        times["POST /objectives, one list"].append(time.perf_counter() - t)
        assert r.status_code == 202 and len(r.json()["ids"]) == batch, r.text[:300]
        t = time.perf_counter()
        for obj in _batch(f"one{run}", batch):
            assert c.post("/api/v1/objectives", json=obj).status_code == 202
        times["POST /objectives, one each"].append(time.perf_counter() - t)
    base, base_in = statistics.median(times[cli]), statistics.median(times[inproc])
    table = Table("way", "median s", "objectives/s", "rate / swarmctl", "rate / in-process", "target",
                  title=f"Submitting {batch} objectives, median of {runs} runs")
    for name, values in times.items():
        med = statistics.median(values)
        table.add_row(name, f"{med:.3f}", f"{batch / med:.0f}", f"{base / med:.2f}", f"{base_in / med:.2f}",
                      ">= 0.80" if name.startswith("POST") else "-")
    return table


def sse(url: str, token: str, redis_url: str, events: int) -> Table:
    """The SSE latency table (module docstring)."""
    ids = [f"sse-{i:04d}" for i in range(events)]
    got = {way: {oid: threading.Event() for oid in ids} for way in ("sse", "xread")}
    at: dict[str, dict[str, float]] = {"sse": {}, "xread": {}}
    ready = {way: threading.Event() for way in got}

    def arrived(way: str, oid: str) -> None:
        if oid in got[way] and oid not in at[way]:
            at[way][oid] = time.perf_counter()
            got[way][oid].set()

    def sse_reader() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=None) as c, \
                c.stream("GET", "/api/v1/events") as r:
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    ready["sse"].set()
                elif line.startswith("data: "):
                    arrived("sse", json.loads(line[6:])["id"])
                    if len(at["sse"]) == events:
                        return

    def xread_reader() -> None:
        client = redis_lib.Redis.from_url(redis_url)
        last = client.xrevrange(Q.EVENT_STREAM, count=1)
        last_id = last[0][0] if last else b"0-0"
        ready["xread"].set()
        while len(at["xread"]) < events:
            for _name, entries in client.xread({Q.EVENT_STREAM: last_id}, block=1000) or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    arrived("xread", fields[b"id"].decode())
        client.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (sse_reader, xread_reader)]
    for t in threads:
        t.start()
    assert all(e.wait(60) for e in ready.values()), "the event stream or the XREAD client did not start"
    writer = redis_lib.Redis.from_url(redis_url)
    sent: dict[str, float] = {}
    for oid in ids:                      # one change at a time, each awaited: no queueing behind another
        sent[oid] = time.perf_counter()
        Q.emit(writer, Q.Started(oid, worker="bench", ts=time.time()))
        for way in got:
            assert got[way][oid].wait(60), f"{way} never delivered {oid}"
    writer.close()
    table = Table("delivery", "median s", "p99 s", "median / floor", "target",
                  title=f"A state change ({events} worker 'started' events) until it is delivered")
    lat = {way: [at[way][oid] - sent[oid] for oid in ids] for way in got}
    floor = statistics.median(lat["xread"])
    for way, name, target in (("xread", "floor: Redis XREAD BLOCK on the stream", "-"),
                              ("sse", "GET /api/v1/events (SSE)", "<= 0.5 s")):
        table.add_row(name, f"{statistics.median(lat[way]):.4f}", f"{p(lat[way], 99):.4f}",
                      f"{statistics.median(lat[way]) / floor:.1f}", target)
    return table


def dashboard(url: str, token: str, loads: int, objectives: int) -> Table:
    """The dashboard page-load table (module docstring)."""
    from selenium.webdriver.common.by import By
    nav = ("const e = performance.getEntriesByType('navigation')[0]; "
           "return [e.responseEnd, e.domContentLoadedEventEnd, e.loadEventEnd];")
    results: dict[str, list[tuple[float, float]]] = {}
    with headless_chromium() as drv:
        drv.get(url + "/login")
        drv.find_element(By.ID, "token").send_keys(token)
        drv.find_element(By.ID, "sign-in").click()
        for name, path in (("baseline: /login", "/login"), ("/objectives", "/objectives")):
            drv.get(url + path)           # warm-up
            rows = []
            for _ in range(loads):
                t = time.perf_counter()
                drv.get(url + path)
                wall = (time.perf_counter() - t) * 1000
                rows.append((drv.execute_script(nav)[2], wall))
            results[name] = rows
        listed = len(drv.find_elements(By.CSS_SELECTOR, "tbody tr"))
    base = statistics.median(r[0] for r in results["baseline: /login"])
    table = Table("page", "median load ms", "p99 load ms", "median driver.get ms", "load / baseline", "target",
                  title=f"Dashboard in headless chromium, {objectives} objectives in the store, "
                        f"{loads} loads each ({listed} rows listed)")
    for name, rows in results.items():
        load = [r[0] for r in rows]
        table.add_row(name, f"{statistics.median(load):.1f}", f"{p(load, 99):.1f}",
                      f"{statistics.median(r[1] for r in rows):.1f}", f"{statistics.median(load) / base:.2f}",
                      "<= 1000 ms" if name == "/objectives" else "-")
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--batch", type=int, default=1000, help="objectives per submission (submit)")
    parser.add_argument("--runs", type=int, default=5, help="submissions each way (submit)")
    parser.add_argument("--events", type=int, default=200, help="state changes timed (sse)")
    parser.add_argument("--page-loads", type=int, default=20, help="page loads each (dashboard)")
    args = parser.parse_args()
    parts = [x for x in args.parts.split(",") if x]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))}; known: {', '.join(PARTS)}")
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        config_text = (ROOT / "src" / "swarmd" / "llm_config.yaml").read_text().replace("  listen: 127.0.0.1:8765\n",
                                                                     "  listen: 127.0.0.1:0\n")
        (data / "llm_config.yaml").write_text(config_text)
        config = load_config(data / "llm_config.yaml")
        t = time.perf_counter()
        ids = fill(data / "memory.db", args.objectives)
        print(f"store of {len(ids)} objectives built in {time.perf_counter() - t:.1f} s")
        redis = ensure_redis(None, data) if set(parts) & {"submit", "sse", "dashboard"} else None
        redis_url = redis.url if redis else "redis://127.0.0.1:9/0"
        if redis:
            write_url_file(data, redis_url)
        server = ApiServer(config, data, data / "memory.db", lambda: redis_url)
        url = server.start()
        token = (data / "api.token").read_text().strip()
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
                if "reads" in parts:
                    tables.append(reads(c, ids, args.requests, args.objectives))
                if "submit" in parts:
                    tables.append(submit(c, data, data / "llm_config.yaml", args.batch, args.runs))
            if "sse" in parts:
                tables.append(sse(url, token, redis_url, args.events))
            if "dashboard" in parts:
                tables.append(dashboard(url, token, args.page_loads, args.objectives))
        finally:
            server.stop()
            if redis:
                redis.stop()
    console = Console(width=130)
    for table in tables:
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
