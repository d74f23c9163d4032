"""Soak: objectives through a real swarmd while one random component is SIGKILLed every K seconds.

    python bench/soak.py [--echo 10000] [--model 500] [--workers 2] [--kill-every 60] [--seed 1]
                         [--baseline 0.05] [--timeout 7200] [--restart-sec 1] [--keep DIR]

What runs: ``swarmd --workers W`` with its own redis-server (unix socket,
append-only file, ``appendfsync everysec``) over a fresh data directory.
``classify`` objectives run on the echo provider (LOCAL_FAST, no inference:
they load the queue path, not the model); ``yes_no`` objectives run on the
real embedded model (Gemma 3 270M via llama.cpp, moved to LOCAL_QUALITY, one
thread per worker).  Objectives go in through ``swarmctl submit --file`` (run in
this process, so its start-up time is not measured) in chunks of 500; a chunk counts as acknowledged when swarmctl exits 0 (a chunk
refused while Redis is down is submitted again, same ids).

After a warm-up (one objective of each kind: workers up, model loaded),
a baseline without faults: the first ``--baseline`` fraction of the
objectives, submitted at once, run to the end; its throughput is the
reference.  Then the rest is submitted and, until every acknowledged
objective is final, one component chosen at random (``--seed``) is
SIGKILLed every ``--kill-every`` seconds:

* ``daemon``: the swarmd process.  As systemd does with ``KillMode=mixed``
  when the main process dies, what is left of it (its workers, orphaned; its
  redis-server stops by itself on PDEATHSIG) is SIGKILLed, and swarmd is
  started again after ``--restart-sec`` (systemd: ``RestartSec=5``).
* ``worker``: one of the supervised workers (the supervisor restarts it and
  hands its job back to RQ).
* ``redis``: swarmd's own redis-server; swarmd notices and exits 3, and is
  restarted as above (its Redis comes back from the append-only file).

Recovery of one kill: seconds from the kill until the system makes progress
again -- for ``daemon``/``redis``, the daemon's heartbeat is back and one
more objective is final in the store (or nothing was left to do); for
``worker``, the job it was running (if any) is final and W workers are
registered again.

Reported (a table): objectives acknowledged; **lost** (acknowledged, not
final in the store at the end: must be 0); **run twice** (objectives with
more than one ``finished`` event of a final state in the event stream: must
be 0); duplicate runs the workers refused (``not run again`` in the worker
logs: the guard of :func:`swarmd.queue.finished_key` at work); kills by
component; longest and median recovery per component; throughput
(objectives/s) of the baseline and of the fault phase, and their ratio.
Exit status 0 when lost and run twice are both 0, 1 otherwise.

The issue's scale is the default (10,000 + 500, 2 workers, a kill every
60 s).  The whole batch then drains in a few minutes, so few kills land;
``--rate R`` paces the fault phase's intake at R objectives/s to spread the
run (and the kills) over ``N / R`` seconds -- throughput is then the intake
rate if swarmd keeps up, and the ratio to the baseline is not printed.
~10 minutes: ``--echo 10000 --model 500 --rate 20 --kill-every 30``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/queue_throughput.py would shadow the standard library's queue (redis-py imports it)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "src"))

import psutil  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402

from swarmd import queue as Q
from swarmd import constants as K  # noqa: E402
from swarmd.cli import main as swarmctl  # noqa: E402
from swarmd.objectives import FINAL_STATES  # noqa: E402
from swarmd.testing.processes import kill_leftovers, stop_swarmd  # noqa: E402

CHUNK = 500
COMPONENTS = ("daemon", "worker", "redis")


def soak_config(tmp: Path) -> Path:
    """The shipped config: LOCAL_FAST on the echo provider (classify), LOCAL_QUALITY
    the embedded model with one thread (yes_no), job timeout 120 s, retries after 1 s."""
    cfg = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())
    model = dict(cfg["tiers"]["LOCAL_FAST"][0], n_threads=1)
    echo = {k: v for k, v in model.items() if k != "quantization"}    # the embedded model's only
    cfg["tiers"]["LOCAL_FAST"] = [dict(echo, provider="echo")]
    cfg["tiers"]["LOCAL_QUALITY"] = [model]
    cfg["actions"]["yes_no"]["tier"] = "LOCAL_QUALITY"
    cfg["daemon"].update(job_timeout_s=120, retry_max=3, retry_intervals_s=[1, 1, 1], heartbeat_s=0.5)
    path = tmp / "llm_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def objectives(n_echo: int, n_model: int, seed: int) -> list[dict]:
    """``n_echo`` classify + ``n_model`` yes_no objectives, shuffled (ids ``e-<i>``, ``m-<i>``)."""
    commits = [json.loads(line) for line in (ROOT / "examples" / "commits-commitizen.jsonl").read_text().splitlines()]
    rows = [{"id": f"e-{i}", "action": "classify", "input": commits[i % len(commits)]["text"],
             "labels": "feat,fix,docs,chore,refactor"} for i in range(n_echo)]
    rows += [{"id": f"m-{i}", "action": "yes_no", "input": f"Is {i} an even number?"} for i in range(n_model)]
    random.Random(seed).shuffle(rows)
    return rows


class Soak:
    """One swarmd under test, its data directory, and the bookkeeping of the run."""

    def __init__(self, args, tmp: Path):
        self.args, self.tmp = args, tmp
        self.data = tmp / "data"
        self.data.mkdir()
        self.config = soak_config(tmp)
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), ANTHROPIC_API_KEY="",
                        OLLAMA_HOST="http://127.0.0.1:9")
        self.env.pop("REDIS_URL", None)
        self._client, self._url = None, None
        self.acked: list[str] = []
        self.kills: list[dict] = []
        self.restarts = 0

    # ------------------------------------------------------------------ processes
    def start(self) -> None:
        (self.data / "redis.url").unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", str(self.args.workers),
                                      "--data-dir", str(self.data), "--config", str(self.config)],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / "swarmd.stderr", "ab"))
        deadline = time.monotonic() + 120
        while not self.alive():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"swarmd did not start (exit {self.proc.poll()}); see {self.tmp}/swarmd.stderr")
            time.sleep(0.2)

    def restart_if_dead(self) -> bool:
        """systemd's part: swarmd exited -> SIGKILL what is left of it, wait RestartSec, start it."""
        if self.proc is None or self.proc.poll() is None:
            return False
        kill_leftovers(self.data)
        time.sleep(self.args.restart_sec)
        self.restarts += 1
        self.start()
        return True

    def stop(self) -> None:
        stop_swarmd(self.proc, self.data, timeout_s=180)

    def kill(self, component: str) -> dict:
        """SIGKILL one component; returns the kill record (time, pid, the job a worker was running)."""
        event = {"component": component, "t": time.monotonic(), "final_at_kill": self.final_count(), "job": None}
        if component == "daemon":
            event["pid"] = self.proc.pid
            self.proc.kill()
            self.proc.wait(timeout=30)       # reaped: recovered() and restart_if_dead() see it exited
        elif component == "redis":
            event["pid"] = int((self.data / "redis" / "redis-server.pid").read_text())
            os.kill(event["pid"], signal.SIGKILL)
        else:
            workers = [p for p in psutil.Process(self.proc.pid).children() if "worker" in " ".join(p.cmdline())]
            victim = random.choice(workers)
            name = victim.cmdline()[victim.cmdline().index("--name") + 1]
            try:
                job = self.client().hget(f"rq:worker:{name}", "current_job")
                event["job"] = job.decode() if job else None
            except redis.RedisError:
                pass
            event["pid"] = victim.pid
            victim.kill()
        self.kills.append(event)
        return event

    # ------------------------------------------------------------------ observation
    def client(self) -> redis.Redis:
        url = (self.data / "redis.url").read_text().strip()
        if url != self._url:
            self._client, self._url = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2), url
        return self._client

    def alive(self) -> bool:
        try:
            hb = self.client().hgetall(K.HEARTBEAT)
            return bool(hb) and time.time() - float(hb[b"ts"]) < 3
        except (redis.RedisError, OSError, KeyError, ValueError):
            return False

    def workers_registered(self) -> int:
        try:
            names = self.client().smembers("rq:workers")
            return sum(1 for n in names if self.client().exists(n))
        except redis.RedisError:
            return 0

    def _db(self):
        return sqlite3.connect(f"file:{self.data / 'memory.db'}?mode=ro", uri=True, timeout=10)

    def final_count(self) -> int:
        try:
            with self._db() as db:
                marks = ",".join("?" * len(FINAL_STATES))
                return db.execute(f"SELECT COUNT(*) FROM objectives WHERE state IN ({marks}) "
                                  "AND id NOT LIKE 'warm-%'", tuple(FINAL_STATES)).fetchone()[0]
        except sqlite3.Error:
            return -1

    def final_ids(self) -> set[str]:
        with self._db() as db:
            marks = ",".join("?" * len(FINAL_STATES))
            return {r[0] for r in db.execute(f"SELECT id FROM objectives WHERE state IN ({marks})",
                                             tuple(FINAL_STATES))}

    def is_final(self, oid: str) -> bool:
        with self._db() as db:
            row = db.execute("SELECT state FROM objectives WHERE id=?", (oid,)).fetchone()
        return bool(row) and row[0] in FINAL_STATES

    def recovered(self, kill: dict) -> bool:
        """Has the system made progress again since ``kill`` (see the module docstring)?"""
        if kill["component"] == "worker":
            job = kill["job"]
            return (job is None or self.is_final(job.split("__r")[0])) and \
                self.workers_registered() >= self.args.workers
        if self.proc.poll() is not None or not self.alive():   # a killed daemon's last heartbeat is < 3 s old
            return False
        final = self.final_count()
        return final > kill["final_at_kill"] or final >= len(self.acked)

    # ------------------------------------------------------------------ intake
    def submit(self, rows: list[dict]) -> None:
        """Submit in chunks through swarmctl; a refused chunk is submitted again (same ids)."""
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            path = self.tmp / "chunk.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in chunk))
            for _attempt in range(120):
                with contextlib.redirect_stdout(io.StringIO()):    # swarmctl prints the ids
                    code = swarmctl(["--config", str(self.config), "--data-dir", str(self.data), "submit",
                                     "--file", str(path)])
                if code == 0:
                    self.acked += [r["id"] for r in chunk]
                    break
                self.restart_if_dead()
                time.sleep(1)
            else:
                raise RuntimeError(f"a chunk was refused 120 times (last exit code {code})")

    def wait_all_final(self, ids, deadline: float, on_tick=None) -> bool:
        """Until every id of ``ids`` (a list, or a callable returning one once all
        are known, else ``None``) is final in the store, or ``deadline``."""
        while time.monotonic() < deadline:
            if on_tick:
                on_tick()
            self.restart_if_dead()
            want = ids() if callable(ids) else ids
            try:
                if want is not None and set(want) <= self.final_ids():
                    return True
            except sqlite3.Error:
                pass
            time.sleep(0.5)
        return False

    # ------------------------------------------------------------------ results
    def run_twice(self) -> list[str]:
        finished = Counter()
        for _i, f in self.client().xrange(Q.EVENT_STREAM):
            if f.get(b"kind") == b"finished" and json.loads(f[b"payload"]).get("state") in FINAL_STATES:
                finished[f[b"id"].decode()] += 1
        return sorted(oid for oid, n in finished.items() if n > 1)

    def refused_reruns(self) -> int:
        return sum(p.read_text(errors="replace").count("not run again") for p in self.data.glob("worker-*.log"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--echo", type=int, default=10000, help="objectives on the echo provider (default 10000)")
    ap.add_argument("--model", type=int, default=500, help="objectives on the embedded model (default 500)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills (default 60)")
    ap.add_argument("--baseline", type=float, default=0.05, help="fraction run first without faults (default 0.05)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="objectives/s submitted in the fault phase (default 0: all at once); pacing spreads "
                         "the run over more kills")
    ap.add_argument("--restart-sec", type=float, default=1.0, help="wait before restarting a dead swarmd (systemd RestartSec)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=7200.0, help="give up after this many seconds")
    ap.add_argument("--keep", help="run in this directory and keep it (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    os.environ.pop("REDIS_URL", None)     # swarmctl (in this process) finds swarmd's own Redis in the data dir

    rows = objectives(args.echo, args.model, args.seed)
    n_base = max(1, int(len(rows) * args.baseline)) if args.baseline > 0 else 0
    rng = random.Random(args.seed)
    ctx = tempfile.TemporaryDirectory(prefix="swarmd-soak-") if not args.keep else None
    tmp = Path(args.keep) if args.keep else Path(ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    soak = Soak(args, tmp)
    deadline = time.monotonic() + args.timeout
    try:
        soak.start()
        warm = [{"id": "warm-e", "action": "classify", "input": "fix: warm up", "labels": "feat,fix"},
                {"id": "warm-m", "action": "yes_no", "input": "Is 2 even?"}]
        soak.submit(warm)                      # workers up, model loaded: not part of the baseline
        soak.wait_all_final([w["id"] for w in warm], deadline)
        soak.acked = []
        t0 = time.monotonic()
        base_rate = None
        if n_base:
            soak.submit(rows[:n_base])
            soak.wait_all_final(soak.acked, deadline)
            base_rate = n_base / (time.monotonic() - t0)
            print(f"baseline: {n_base} objectives in {time.monotonic() - t0:.1f}s ({base_rate:.2f}/s), no faults",
                  flush=True)
        t1 = time.monotonic()
        rest = rows[n_base:]
        if not args.rate:
            soak.submit(rest)
        step = max(1, int(args.rate * 5)) if args.rate else 0    # with --rate: one chunk every 5 s
        sent = 0 if args.rate else len(rest)
        pending: list[dict] = []
        recoveries: dict[str, list[float]] = {c: [] for c in COMPONENTS}
        next_kill = time.monotonic() + args.kill_every

        def tick() -> None:
            nonlocal next_kill, sent
            if sent < len(rest) and time.monotonic() >= t1 + 5 * sent / step:
                soak.submit(rest[sent:sent + step])
                sent += step
            for kill in list(pending):
                try:
                    ok = soak.recovered(kill)
                except (sqlite3.Error, redis.RedisError, OSError):
                    ok = False
                if ok:
                    recoveries[kill["component"]].append(time.monotonic() - kill["t"])
                    pending.remove(kill)
            if time.monotonic() >= next_kill and not pending:
                component = rng.choice(COMPONENTS)
                try:
                    kill = soak.kill(component)
                except (psutil.Error, OSError, ValueError, IndexError) as exc:   # nothing to kill right now
                    print(f"kill {component} skipped: {exc}", flush=True)
                else:
                    pending.append(kill)
                    print(f"t={time.monotonic() - t1:6.1f}s killed {component} (pid {kill['pid']}); "
                          f"{soak.final_count()}/{len(soak.acked)} final", flush=True)
                next_kill = time.monotonic() + args.kill_every

        complete = soak.wait_all_final(lambda: soak.acked if sent >= len(rest) else None, deadline, on_tick=tick)
        fault_s = time.monotonic() - t1
        while pending and time.monotonic() < deadline:   # the last kill's recovery
            tick()
            soak.restart_if_dead()
            time.sleep(0.5)
        lost = sorted(set(soak.acked) - soak.final_ids())
        twice = soak.run_twice()
        refused = soak.refused_reruns()
    finally:
        soak.stop()
    n_fault = len(rows) - n_base
    fault_rate = n_fault / fault_s
    table = [("objectives acknowledged", f"{len(soak.acked)} ({args.echo} echo + {args.model} model)"),
             ("lost (must be 0)", str(len(lost))),
             ("run twice (must be 0)", str(len(twice))),
             ("re-runs refused by the finished marker", str(refused)),
             ("kills", ", ".join(f"{c} {sum(k['component'] == c for k in soak.kills)}" for c in COMPONENTS)),
             ("swarmd restarts", str(soak.restarts))]
    for c in COMPONENTS:
        if recoveries[c]:
            table.append((f"recovery after {c} kill: longest / median",
                          f"{max(recoveries[c]):.1f} s / {statistics.median(recoveries[c]):.1f} s"))
    table.append(("throughput, baseline (no faults)", f"{base_rate:.2f} objectives/s" if base_rate else "-"))
    table.append(("throughput, under faults", f"{fault_rate:.2f} objectives/s ({n_fault} in {fault_s:.0f} s)"))
    if base_rate and not args.rate:
        table.append(("ratio faults / baseline", f"{fault_rate / base_rate:.2f}"))
    width = max(len(k) for k, _v in table)
    print(f"\nsoak: {args.echo} echo + {args.model} model objectives, {args.workers} workers, "
          f"a kill every {args.kill_every:g} s (seed {args.seed})"
          + (f", fault-phase intake paced at {args.rate:g}/s" if args.rate else "")
          + ("" if complete else " -- TIMED OUT"))
    for key, value in table:
        print(f"  {key:<{width}}  {value}")
    if lost:
        print("lost:", ", ".join(lost[:20]))
    if twice:
        print("run twice:", ", ".join(twice[:20]))
    if ctx is not None:
        ctx.cleanup()
    return 0 if complete and not lost and not twice else 1


if __name__ == "__main__":
    sys.exit(main())
