"""Benchmark: objectives/s through a running daemon, worker-side batching on and off.

    python bench/daemon_batch.py [--n 120] [--rounds 3] [--batch-max 8] [--offset 300]

Two ``swarmd --workers 1`` daemons with the real embedded model (the shipped
config: LOCAL_FAST is the in-process llama.cpp model; no API key, Ollama on a
closed loopback port, so an escalation costs a refused connection on both
sides alike), each with its own data directory and its own Redis (started by
the daemon): **batched** with ``daemon.batch_max: --batch-max`` (default: the
shipped value) and **unbatched** with ``daemon.batch_max: 1``
(:mod:`swarmd.workers.batching`).  Both are up, their model loaded and an
untimed warm-up run of 16 objectives done, before any clock starts.  Then
``--rounds`` rounds, each one timed run per side (alternating which side goes
first), so both sides see the same load on a shared machine.

A run submits ``--n`` commit messages of ``examples/commits-commitizen.jsonl``
from ``--offset`` on (default 300-419: messages the shipped calibration was not
fitted on) as ``classify`` objectives over the ten Conventional Commits types,
with ``swarmctl submit --file``'s code in this process, and stops the clock
when the last one is final in the daemon's Redis state mirror
(``swarmd:objective:<id>``).  Answers and confidences are read from the same
mirror and compared message by message between the two sides.

Printed (rich table): median objectives/s per side and each run's, the ratio
batched / unbatched (target ≥ 1.3) with the ratio of each round, the number
of messages whose answer and confidence are identical on both sides in every
round, and the load average.
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
# bench/ holds a file named like the stdlib module `queue`: keep that folder off sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))

from redis import Redis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd import cli  # noqa: E402
from swarmd import constants as K  # noqa: E402
from swarmd.config import load_config  # noqa: E402
from swarmd.objectives import FINAL_STATES  # noqa: E402

LABELS = "build,chore,ci,docs,feat,fix,perf,refactor,style,test"
DATA = ROOT / "examples" / "commits-commitizen.jsonl"
#: objectives of the untimed warm-up run of each side
WARM_UP = 16
#: seconds between two looks at the objectives not yet final: the look is CPU taken from the
#: worker's llama.cpp threads (2 on 2 cores), so it is kept rare (a run lasts 7-15 s) and only
#: reads the objectives still pending (a look at all 120 every 20 ms cost the worker ~10%)
POLL_S = 0.05


class Side:
    """One running ``swarmd --workers 1`` over ``<tmp>/<name>`` with ``daemon.batch_max: batch_max``."""

    def __init__(self, tmp: Path, name: str, batch_max: int):
        self.name, self.batch_max = name, batch_max
        self.dir = tmp / name
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        shipped = (ROOT / "src" / "swarmd" / "llm_config.yaml").read_text()
        assert "batch_max: 8 " in shipped, "the shipped config's daemon.batch_max line changed"
        self.config = self.dir / "llm_config.yaml"
        self.config.write_text(shipped.replace("batch_max: 8 ", f"batch_max: {batch_max} "))
        (self.dir / "policy.yaml").write_text((ROOT / "src" / "swarmd" / "policy.yaml").read_text())
        env = dict(os.environ, ANTHROPIC_API_KEY="", OLLAMA_HOST="http://127.0.0.1:9", PYTHONPATH=str(ROOT / "src"))
        env.pop("REDIS_URL", None)
        self.log = open(self.dir / "swarmd.stderr", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", "1", "--data-dir", str(self.data),
                                      "--config", str(self.config)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        self.url = self._wait_up()
        self.redis = Redis.from_url(self.url)

    def _wait_up(self, timeout_s: float = 180) -> str:
        """The daemon's Redis URL, once its heartbeat is there (``RuntimeError`` if it exits or times out)."""
        deadline = time.monotonic() + timeout_s
        url_file = self.data / "redis.url"
        while time.monotonic() < deadline:
            self.alive()
            if url_file.exists():
                url = url_file.read_text().strip()
                try:
                    if Redis.from_url(url).exists(K.HEARTBEAT):
                        return url
                except Exception:  # noqa: BLE001 - its Redis still starting
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: no heartbeat after {timeout_s} s")

    def alive(self) -> None:
        """Raise ``RuntimeError`` (with the end of its log) when the daemon has exited."""
        if self.proc.poll() is not None:
            log = self.data / "daemon_hybrid.log"
            raise RuntimeError(f"{self.name}: swarmd exited with {self.proc.returncode}:\n"
                               f"{log.read_text()[-3000:] if log.exists() else ''}")

    def run(self, tag: str, texts: list[str]) -> tuple[float, list[tuple]]:
        """Submit ``texts`` as objectives ``<tag>-<i>``; returns (seconds from the
        submit to the last one final, [(answer, confidence, tier, state)] per text)."""
        ids = [f"{tag}-{i}" for i in range(len(texts))]
        path = self.dir / f"{tag}.jsonl"
        path.write_text("".join(json.dumps({"id": i, "action": "classify", "input": t, "labels": LABELS}) + "\n"
                                for i, t in zip(ids, texts)))
        keys = [K.objective_key(i) for i in ids]
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["--config", str(self.config), "submit", "--file", str(path), "--redis-url", self.url]) == 0
        pending = list(keys)
        while pending:
            pipe = self.redis.pipeline(transaction=False)
            for key in pending:
                pipe.hget(key, "state")
            pending = [k for k, s in zip(pending, pipe.execute()) if s is None or s.decode() not in FINAL_STATES]
            if pending:
                self.alive()
                time.sleep(POLL_S)
        elapsed = time.perf_counter() - start
        out = []
        for key in keys:
            state, result = self.redis.hmget(key, "state", "result")
            r = json.loads(result)
            out.append((r.get("answer"), r.get("confidence"), r.get("tier"), state.decode()))
        return elapsed, out

    def close(self) -> None:
        """SIGTERM (the daemon stops its worker and its Redis) and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=120, help="objectives per run (default 120)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument("--batch-max", type=int, default=None,
                        help="daemon.batch_max of the batched side (default: the shipped config's)")
    parser.add_argument("--offset", type=int, default=300, help="first message of the data set (default 300)")
    args = parser.parse_args(argv)
    batch_max = args.batch_max or load_config(ROOT / "src" / "swarmd" / "llm_config.yaml").daemon.batch_max
    lines = DATA.read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines[args.offset:args.offset + args.n]]
    warm = [json.loads(line)["text"] for line in lines[:WARM_UP]]
    console = Console(width=max(Console().width, 150))
    sides: list[Side] = []
    times: dict[str, list[float]] = {"batched": [], "unbatched": []}
    answers: dict[str, list[list[tuple]]] = {"batched": [], "unbatched": []}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sides = [Side(Path(tmp), "batched", batch_max), Side(Path(tmp), "unbatched", 1)]
            for side in sides:
                side.run("warm", warm)
            for r in range(args.rounds):
                for side in (sides if r % 2 == 0 else sides[::-1]):     # alternate who goes first
                    seconds, got = side.run(f"r{r}", texts)
                    times[side.name].append(seconds)
                    answers[side.name].append(got)
                    console.print(f"round {r + 1} {side.name}: {len(texts) / seconds:.2f} objectives/s "
                                  f"(load average {os.getloadavg()[0]:.1f})")
        finally:
            for side in sides:
                side.close()
    rate = {name: [len(texts) / s for s in secs] for name, secs in times.items()}
    b, u = statistics.median(rate["batched"]), statistics.median(rate["unbatched"])
    def agree(i: int, fields: slice) -> bool:
        return all(answers["batched"][r][i][fields] == answers["unbatched"][r][i][fields] for r in range(args.rounds))

    same_answer = sum(agree(i, slice(0, 1)) for i in range(len(texts)))
    same = sum(agree(i, slice(0, 2)) for i in range(len(texts)))
    stable = all(answers[name][r] == answers[name][0] for name in answers for r in range(args.rounds))
    table = Table(title=f"swarmd --workers 1, embedded model: {len(texts)} commit messages per run, "
                        f"{args.rounds} runs per side, interleaved (load average {os.getloadavg()[0]:.1f} "
                        f"on {os.cpu_count()} CPUs)")
    for col in ("daemon", "median objectives/s", "runs (objectives/s)"):
        table.add_column(col)
    table.add_row(f"daemon.batch_max: {batch_max} (worker-side batching)", f"{b:.2f}",
                  ", ".join(f"{x:.2f}" for x in rate["batched"]))
    table.add_row("daemon.batch_max: 1 (one objective per model call)", f"{u:.2f}",
                  ", ".join(f"{x:.2f}" for x in rate["unbatched"]))
    console.print(table)
    console.print(f"batched / unbatched objectives/s: {b / u:.2f}× (target ≥ 1.3); per round: "
                  + ", ".join(f"{x / y:.2f}" for x, y in zip(rate["batched"], rate["unbatched"])))
    console.print(f"identical on both sides in every round: answer {same_answer}/{len(texts)}, answer and "
                  f"confidence {same}/{len(texts)}; each side's results the same in every round: {stable}")
    for i in range(len(texts)):
        if not agree(i, slice(0, 2)):
            (a, ca, *_), (u, cu, *_) = answers["batched"][0][i], answers["unbatched"][0][i]
            console.print(f"  message {args.offset + i}: batched {a} {ca}, unbatched {u} {cu}: {texts[i][:60]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
