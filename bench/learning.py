"""Benchmark: does the learning memory make the local tier answer more, honestly?

    python bench/learning.py [--seeds 5] [--n 600] [--noise 0,0.15] [--consolidate-every 100]
    python bench/learning.py --synthetic 100000      # consolidation time only

A stream of the 600 commitizen commit messages (examples/commits-commitizen.jsonl)
in a fixed shuffled order per seed goes through :class:`swarmd.router.Router`
(action ``classify``, the ten Conventional Commits types), chain LOCAL_FAST →
API_FALLBACK (no Ollama here):

* LOCAL_FAST is the real embedded Gemma 3 270M.  Its label log-probabilities
  for a prompt do not change (same prompt, same weights), so each message is
  scored by the model once, in an untimed first pass, and the timed passes
  replay those scores through the same calibration code
  (:func:`swarmd.router.calibration.label_decision`) — the learned
  calibration still changes answers and confidences.  The first pass's
  items/s is the real model's; the replayed passes time the router and the
  memory without the model.
* API_FALLBACK is a loopback server speaking the Anthropic Messages API,
  called through the official ``anthropic`` client, acting as the teacher:
  it answers the authors' label (``--noise``: that share of answers replaced
  by another label, drawn per message and seed).

Memory off: the router as shipped.  Memory on: the same stream and budget
(none), with the learning loop of ``swarmd.memory`` as the daemon runs it:
teacher records, calibration audits at ``memory.audit_rate`` (5%),
the answer cache, and a consolidation every ``--consolidate-every`` messages
(refit of the gate with the risk bound ``quality.max_false_accept``).

Printed per 100-message window (medians over seeds): final accuracy, share
answered without the teacher (tier LOCAL_FAST or MEMORY), teacher calls,
cost (USD at the configured API prices), and the false-accept rate of
locally accepted answers (wrong against the authors' label); then the
issue's targets with the measured values.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import yaml  # noqa: E402
from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import parse_config  # noqa: E402
from swarmd.memory.audit import audit  # noqa: E402
from swarmd.memory.consolidate import consolidate  # noqa: E402
from swarmd.memory.gate import RouterMemory  # noqa: E402
from swarmd.memory.outcomes import teacher_record  # noqa: E402
from swarmd.memory.records import Memory, Verified  # noqa: E402
from swarmd.router import Router  # noqa: E402
from swarmd.router.calibration import label_decision  # noqa: E402
from swarmd.router.prompts import build_prompt  # noqa: E402
from swarmd.router.providers import make_provider  # noqa: E402
from swarmd.router.providers.base import Completion  # noqa: E402

DATA = ROOT / "examples" / "commits-commitizen.jsonl"
LABELS = ("build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test")
LOCAL = ("LOCAL_FAST", "MEMORY")
console = Console(highlight=False)


# --------------------------------------------------------------------------- the teacher


class Teacher:
    """A loopback Anthropic Messages API answering each commit message's label.

    ``truth``: the prompt's input line (as the router cleans it) → label;
    ``noise``: share of answers replaced by another label (drawn from a hash
    of seed and message, so a run is reproducible)."""

    def __init__(self, truth: dict[str, str], noise: float, seed: int):
        self.truth, self.noise, self.seed, self.calls = truth, noise, seed, 0
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                teacher.calls += 1
                prompt = body["messages"][-1]["content"]
                text = prompt.rsplit("Message: ", 1)[-1].rsplit("\nType:", 1)[0]
                answer = teacher.answer(text)
                out = json.dumps({"id": "msg_b", "type": "message", "role": "assistant", "model": body["model"],
                                  "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
                                  "stop_sequence": None,
                                  "usage": {"input_tokens": len(prompt) // 4, "output_tokens": 1}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, text: str) -> str:
        label = self.truth.get(text, "chore")
        h = zlib.crc32(f"{self.seed}:{text}".encode())
        if h % 10_000 < self.noise * 10_000:
            others = [l for l in LABELS if l != label]
            return others[(h // 10_000) % len(others)]
        return label

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- the local tier


class ScoreReplay:
    """Provider factory: the embedded model scores each distinct prompt once
    (calibration off); every call then applies the prompt's calibration to
    those scores, as the embedded provider does."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.scores: dict[str, tuple[dict[str, float], int]] = {}
        if path and path.exists():
            self.scores = {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
        self.loaded = len(self.scores)
        self.model_seconds = 0.0
        self._inner = None

    def save(self) -> None:
        """Keep the scores for the next run (``--scores``): the model is slow on a shared machine."""
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.scores))

    def __call__(self, model, cooldown_s):
        if model.provider != "llama_cpp":
            return make_provider(model, cooldown_s)
        replay = self

        class Replayed:
            kind = "llama_cpp"

            def __init__(self):
                self.model = model

            def classify(self, prompt):
                key = hashlib.sha256(f"{model.model}\0{prompt.prefix}{prompt.body}".encode()).hexdigest()
                if key not in replay.scores:
                    if replay._inner is None:
                        replay._inner = make_provider(model, cooldown_s)
                    start = time.perf_counter()
                    c = replay._inner.classify(dataclasses.replace(prompt, calibration=()))
                    replay.model_seconds += time.perf_counter() - start
                    replay.scores[key] = (c.extra["label_logprobs"], c.tokens_in)
                scores, tokens_in = replay.scores[key]
                cal = next((c for c in prompt.calibration if c.applies(model.model, prompt.labels)), None)
                best, q, conf = label_decision(scores, cal, model.label_temperature)
                return Completion(best, tokens_in, 1, 0.0, label_probs=q, confidence=conf if cal else None,
                                  extra={"label_logprobs": scores})

            def close(self):
                pass

        return Replayed()


def make_config(teacher_url: str, **memory):
    data = yaml.safe_load((ROOT / "llm_config.yaml").read_text())
    data["escalation"]["chain"] = ["LOCAL_FAST", "API_FALLBACK"]
    data["actions"] = {"classify": data["actions"]["classify"]}
    data["quality"]["per_action"] = {}
    data["tiers"]["API_FALLBACK"][0]["base_url"] = teacher_url
    data["budgets"] = {"daily_usd": None, "monthly_usd": None}
    data["memory"] = {**data.get("memory", {}), **memory}
    return parse_config(yaml.safe_dump(data), "llm_config.yaml (bench: teacher on loopback)",
                        env={"ANTHROPIC_API_KEY": "sk-bench-teacher"})


# --------------------------------------------------------------------------- one stream


def run_stream(items, seed: int, noise: float, memory_on: bool, replay: ScoreReplay, every: int,
               min_verified: int) -> dict:
    """One pass over the stream; returns per-message outcomes and timings."""
    cleaned = {" ".join(it["text"].split())[:100]: it["label"] for it in items}
    teacher = Teacher(cleaned, noise, seed)
    config = make_config(teacher.url, min_verified=min_verified)
    order = list(items)
    random.Random(seed).shuffle(order)
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "memory.db") if memory_on else None
        router = Router(config, provider_factory=replay, memory=RouterMemory(memory) if memory_on else None)
        rows, route_s, learn_s, consolidate_s = [], 0.0, 0.0, 0.0
        for i, item in enumerate(order, 1):
            oid = f"s{seed}-{i}"
            start = time.perf_counter()
            result = router.route("classify", item["text"], LABELS, objective_id=oid)
            route_s += time.perf_counter() - start
            audited = None
            start = time.perf_counter()
            if memory_on:       # in the daemon: records written from events, audits after the result
                record = teacher_record("classify", item["text"], LABELS, result.attempts, oid)
                if record is not None:
                    memory.add(record)
                audited = audit(router, {"id": oid, "action": "classify", "input": item["text"],
                                         "labels": list(LABELS)}, result, config.memory.audit_rate)
                if audited is not None:
                    memory.add(audited[0])
            learn_s += time.perf_counter() - start
            teacher_calls = sum(a.tier == "API_FALLBACK" for a in result.attempts) + (audited is not None)
            cost = result.cost_usd + (audited[1].cost_usd if audited else 0.0)
            rows.append({"tier": result.tier, "status": result.status, "correct": result.answer == item["label"],
                         "teacher_calls": teacher_calls, "cost": cost})
            if memory_on and i % every == 0 and i < len(order):
                start = time.perf_counter()
                consolidate(memory, config)
                consolidate_s += time.perf_counter() - start
        router.close()
        if memory:
            memory.close()
    teacher.close()
    return {"rows": rows, "route_s": route_s, "learn_s": learn_s, "consolidate_s": consolidate_s}


def window_stats(rows) -> dict:
    local = [r for r in rows if r["status"] == "accepted" and r["tier"] in LOCAL]
    cache = [r for r in rows if r["tier"] == "MEMORY"]
    return {"accuracy": sum(r["correct"] for r in rows) / len(rows),
            "no_teacher": sum(r["tier"] in LOCAL and r["status"] == "accepted" for r in rows) / len(rows),
            "teacher_calls": sum(r["teacher_calls"] for r in rows), "cost": sum(r["cost"] for r in rows),
            "false_accept": (sum(not r["correct"] for r in local) / len(local)) if local else None,
            "local_accepted": len(local), "cache_hits": len(cache), "cache_right": sum(r["correct"] for r in cache)}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, pct=False):
    if v is None:
        return "–"
    return f"{100 * v:.1f}%" if pct else (f"{v:.4f}" if isinstance(v, float) else str(v))


# --------------------------------------------------------------------------- synthetic consolidation


def synthetic(n: int) -> None:
    """Time one consolidation of ``n`` synthetic records (10 labels, one model, label scores)."""
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "memory.db")
        batch = []
        for i in range(n):
            truth = rng.choice(LABELS)
            scores = {l: -3.0 + rng.gauss(0, 0.5) for l in LABELS}
            scores[truth] += rng.choice([0.0, 1.5, 3.0])
            local = max(scores, key=scores.get)
            batch.append(Verified("classify", LABELS, f"synthetic message {i} {rng.random():.6f}", truth,
                                  rng.choice(["teacher", "teacher", "audit", "human"]), objective_id=f"y{i}",
                                  model="gemma-3-270m-q4_k_m", local_tier="LOCAL_FAST", local_answer=local,
                                  local_confidence=0.5, local_accepted=False, local_scores=scores))
            if len(batch) == 5000:
                memory.add_many(batch)
                batch = []
        memory.add_many(batch)
        config = make_config("http://127.0.0.1:9", max_records=n)
        start, cpu = time.perf_counter(), time.process_time()
        report = consolidate(memory, config)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        memory.close()
    table = Table(title=f"consolidation of {n:,} synthetic records (load average {os.getloadavg()[0]:.1f} "
                        f"on {os.cpu_count()} cores)")
    for col in ("records", "wall s", "CPU s (this process)", "groups refitted", "target ≤ 60 s (wall)"):
        table.add_column(col)
    table.add_row(f"{n:,}", f"{seconds:.1f}", f"{cpu:.1f}", str(sum(g.version is not None for g in report.groups)),
                  "met" if seconds <= 60 else "NOT met")
    console.print(table)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--noise", default="0,0.15", help="teacher error rates to run, comma-separated")
    ap.add_argument("--consolidate-every", type=int, default=100)
    ap.add_argument("--min-verified", type=int, default=100)
    ap.add_argument("--synthetic", type=int, help="only time a consolidation of this many synthetic records")
    ap.add_argument("--scores", default=str(ROOT / "data" / "bench" / "learning-scores.json"),
                    help="file keeping the model's label scores between runs ('' = none)")
    args = ap.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if args.synthetic:
        synthetic(args.synthetic)
        return 0
    items = [json.loads(line) for line in DATA.read_text().splitlines()][:args.n]
    replay = ScoreReplay(Path(args.scores) if args.scores else None)
    run_stream(items, 0, 0.0, False, replay, args.consolidate_every, args.min_verified)   # the model scores all
    replay.save()
    scored = len(replay.scores) - replay.loaded
    if scored:
        console.print(f"embedded model: {scored} prompts scored in {replay.model_seconds:.0f} s = "
                      f"{scored / replay.model_seconds:.2f} items/s (then replayed in every timed pass)")
    else:
        console.print(f"embedded model: every prompt's scores read from {args.scores} (a previous run's)")
    summary = []
    for noise in [float(x) for x in args.noise.split(",")]:
        runs = {False: [], True: []}
        for seed in range(1, args.seeds + 1):
            for memory_on in (False, True):
                out = run_stream(items, seed, noise, memory_on, replay, args.consolidate_every, args.min_verified)
                runs[memory_on].append(out)
        windows = range(0, len(items), 100)
        table = Table(title=f"teacher noise {noise:.0%}: medians over {args.seeds} seeds per 100-message window "
                            "(off → on)")
        for col in ("messages", "accuracy", "answered w/o teacher", "teacher calls", "cost USD",
                    "false-accept of local answers", "max FA over seeds (on)"):
            table.add_column(col)
        per = {m: [[window_stats(r["rows"][w:w + 100]) for w in windows] for r in runs[m]] for m in (False, True)}
        for wi, w in enumerate(windows):
            cell = lambda key, pct=False: " → ".join(fmt(med([s[wi][key] for s in per[m]]), pct) for m in (False, True))
            worst = max((s[wi]["false_accept"] or 0.0) for s in per[True])
            table.add_row(f"{w + 1}-{w + 100}", cell("accuracy", True), cell("no_teacher", True),
                          cell("teacher_calls"), cell("cost"), cell("false_accept", True), fmt(worst, True))
        console.print(table)
        last = {m: [window_stats(r["rows"][-300:]) for r in runs[m]] for m in (False, True)}
        after200 = max((window_stats(r["rows"][200:][w:w + 100])["false_accept"] or 0.0)
                       for r in runs[True] for w in range(0, len(items) - 200, 100))
        gain = med([on["no_teacher"] - off["no_teacher"] for on, off in zip(last[True], last[False])])
        fa_on, fa_off = med([s["false_accept"] for s in last[True]]), med([s["false_accept"] for s in last[False]])
        rate = {m: len(items) * len(runs[m]) / sum(r["route_s"] for r in runs[m]) for m in (False, True)}
        right = sum(window_stats(r["rows"])["cache_right"] for r in runs[True])
        all_hits = sum(window_stats(r["rows"])["cache_hits"] for r in runs[True])
        learn_ms = 1000 * sum(r["learn_s"] for r in runs[True]) / (len(items) * len(runs[True]))
        summary.append((noise, after200, gain, fa_on, fa_off, rate, all_hits, right,
                        statistics.median(r["consolidate_s"] for r in runs[True]), learn_ms))
    table = Table(title="targets (issue 10)")
    for col in ("teacher noise", "target", "measured", "met"):
        table.add_column(col)
    for noise, after200, gain, fa_on, fa_off, rate, all_hits, right, cons, learn_ms in summary:
        n = f"{noise:.0%}"
        table.add_row(n, "after msg 200: local FA ≤ 15% in every seed and window (on)", fmt(after200, True),
                      "yes" if after200 <= 0.15 else "no")
        table.add_row(n, "last 300: answered w/o teacher, on − off ≥ +10 points", f"{100 * (gain or 0):+.1f} points",
                      "yes" if (gain or 0) >= 0.10 else "no")
        table.add_row(n, "last 300: local FA on ≤ off", f"{fmt(fa_on, True)} vs {fmt(fa_off, True)}",
                      "yes" if (fa_on or 0) <= (fa_off or 0) else "no")
        table.add_row(n, "router items/s on ≥ 0.7 × off (route() only, scores replayed)",
                      f"{rate[True]:.0f} vs {rate[False]:.0f} = {rate[True] / rate[False]:.2f}×",
                      "yes" if rate[True] >= 0.7 * rate[False] else "no")
        table.add_row(n, "cache-tier hit precision ≥ 98%",
                      f"{right}/{all_hits} = {fmt(right / all_hits if all_hits else None, True)}",
                      "yes" if all_hits and right / all_hits >= 0.98 else "–")
        table.add_row(n, "consolidation time per run (median s, ≤ 600 records)", f"{cons:.1f}", "")
        table.add_row(n, "recording (teacher record, audit) per message, ms (daemon's work)", f"{learn_ms:.2f}", "")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
