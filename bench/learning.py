"""Benchmark: does the learning memory make the local tier answer more, honestly?

    python bench/learning.py [--seeds 5] [--n 600] [--noise 0,0.15] [--consolidate-every 100]
    python bench/learning.py --data bench/data/commits-psr.jsonl   # another repository's commits
    python bench/learning.py --synthetic 100000      # consolidation time only

A stream of the 600 commitizen commit messages (examples/commits-commitizen.jsonl;
``--data``: another file of that format, e.g. ``bench/data/commits-psr.jsonl``,
1,439 commits of another repository, of which the first ``--n``)
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

Three arms, same stream and budget (none):

* ``off`` — the router as shipped, no learning memory;
* ``on`` — the learning loop of ``swarmd.memory`` as the daemon runs it:
  teacher records, calibration audits at ``memory.audit_rate`` (5%), the
  answer cache, and a consolidation every ``--consolidate-every`` messages
  (refit of the gate per prompt form with the risk bound
  ``quality.max_false_accept``), with the fixed prompt only;
* ``on+R`` — the same plus ``--k`` retrieved verified examples (``--mode``,
  default hybrid) in LOCAL_FAST's prompt whenever a calibration for the
  retrieved prompt form exists (shipped in ``llm_config.yaml`` or learned);
  the vector index is synced after every message (the daemon does it every
  10 s).  Retrieved prompts depend on the memory's contents, so they are
  new prompts: the model scores them during the timed pass (their model
  time is measured and subtracted from the router's time), and the score
  file keeps them for the next run (keys are hashes of the whole prompt).

Printed per 100-message window (medians over seeds): final accuracy, share
answered without the teacher (tier LOCAL_FAST or MEMORY), teacher calls,
cost (USD at the configured API prices), and the false-accept rate of
locally accepted answers (wrong against the authors' label); then the
issue's targets with the measured values.  The false-accept target is judged
per seed over messages 201-N (all locally accepted answers after message
200); the worst 100-message window is printed as information (a window with
few local answers has a wide error).
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
# bench/ itself off the path: bench/queue_throughput.py would shadow the standard library's queue
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "src"))

import yaml  # noqa: E402
from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import parse_config  # noqa: E402
from swarmd.memory.audit import audit  # noqa: E402
from swarmd.memory.consolidate import consolidate  # noqa: E402
from swarmd.memory.gate import RouterMemory, open_retriever  # noqa: E402
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
console = Console(highlight=False, width=200)


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
    those scores, as the embedded provider does (the first calibration that
    applies to the model, label set and prompt form).

    ``scores``: sha256 of (model, whole prompt) → (label log-probabilities,
    tokens in); ``model_seconds`` / ``scored``: time and count of the prompts
    scored by this process, per prompt form (their time is taken out of the
    router's; :func:`time_forms` measures the model's speed per form)."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.scores: dict[str, list] = {}
        for part in sorted(path.parent.glob(f"{path.stem}-*.json")) + [path] if path else []:
            if part.exists():       # the main file and the parts of --fill-only runs (``<stem>-<seed>.json``)
                self.scores.update(json.loads(part.read_text()))
        self.loaded = len(self.scores)
        self.new: dict[str, list] = {}      # the scores this process computed (what save() writes)
        self.model_seconds = {"fixed": 0.0, "retrieved": 0.0}
        self.scored = {"fixed": 0, "retrieved": 0}
        self.inner = None

    def save(self) -> None:
        """Keep the scores this process computed for the next run (``--scores``:
        the model is slow on a shared machine), added to what the file held;
        the other files' scores stay in theirs (a ``--fill-only`` part file
        does not become a copy of every other one)."""
        if self.path and self.new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            kept = json.loads(self.path.read_text()) if self.path.exists() else {}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({**kept, **self.new}))
            tmp.replace(self.path)

    def total_seconds(self) -> float:
        return sum(self.model_seconds.values())

    def model(self, model, cooldown_s=60.0):
        """The real embedded model (loaded on first use)."""
        if self.inner is None:
            self.inner = make_provider(model, cooldown_s)
        return self.inner

    def __call__(self, model, cooldown_s):
        if model.provider != "llama_cpp":
            return make_provider(model, cooldown_s)
        replay = self

        def key_of(prompt) -> str:
            return hashlib.sha256(f"{model.model}\0{prompt.prefix}{prompt.body}".encode()).hexdigest()

        class Replayed:
            kind = "llama_cpp"

            def __init__(self):
                self.model = model

            def classify(self, prompt):
                key = key_of(prompt)
                if key not in replay.scores:
                    inner = replay.model(model, cooldown_s)
                    start = time.perf_counter()
                    c = inner.classify(dataclasses.replace(prompt, calibration=()))
                    replay.model_seconds[prompt.form] += time.perf_counter() - start
                    replay.scored[prompt.form] += 1
                    replay.scores[key] = replay.new[key] = [c.extra["label_logprobs"], c.tokens_in]
                scores, tokens_in = replay.scores[key][:2]
                cal = next((c for c in prompt.calibration if c.applies(model.model, prompt.labels, prompt.form)),
                           None)
                best, q, conf = label_decision(scores, cal, model.label_temperature)
                return Completion(best, tokens_in, 1, 0.0, label_probs=q, confidence=conf if cal else None,
                                  extra={"label_logprobs": scores})

            def classify_batch(self, prompts):
                """The prompts not scored yet go to the real model in one batch
                (shared prefix decoded once); then each is :meth:`classify`'d."""
                keys = [key_of(p) for p in prompts]
                todo = list({k: i for i, k in enumerate(keys) if k not in replay.scores}.values())
                if todo:
                    inner = replay.model(model, cooldown_s)
                    start = time.perf_counter()
                    got = inner.classify_batch([dataclasses.replace(prompts[i], calibration=()) for i in todo])
                    took = time.perf_counter() - start
                    for i, c in zip(todo, got):
                        replay.model_seconds[prompts[i].form] += took / len(todo)
                        replay.scored[prompts[i].form] += 1
                        if not isinstance(c, Exception):
                            replay.scores[keys[i]] = replay.new[keys[i]] = [c.extra["label_logprobs"], c.tokens_in]
                return [self.classify(p) for p in prompts]

            def close(self):
                pass

        return Replayed()


def time_forms(items, replay: ScoreReplay, k: int, mode: str, n: int = 40) -> dict[str, float]:
    """Median seconds per prompt of the real model in each prompt form, A/B
    interleaved in this run: for ``n`` messages, the fixed prompt and the
    prompt with ``k`` examples retrieved (``mode``) from a pool of the other
    messages (verified), each scored in turn; retrieval included in the
    retrieved form's time (as the router does it)."""
    config = make_config("http://127.0.0.1:9", retrieval_examples=k, retrieval_mode=mode)
    action, model = config.actions["classify"], config.tiers["LOCAL_FAST"][0]
    inner = replay.model(model)
    times = {"fixed": [], "retrieved": []}
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "memory.db")
        memory.add_many([Verified("classify", LABELS, it["text"], it["label"], "human", objective_id=f"p{i}")
                         for i, it in enumerate(items[n:])])
        retriever = open_retriever(config, memory)
        retriever.sync_all()
        inner.classify(dataclasses.replace(build_prompt(action, items[0]["text"], LABELS), calibration=()))
        for it in items[:n]:
            start = time.perf_counter()
            inner.classify(dataclasses.replace(build_prompt(action, it["text"], LABELS), calibration=()))
            times["fixed"].append(time.perf_counter() - start)
            start = time.perf_counter()
            examples = tuple((e.input, e.answer) for e in retriever.search("classify", LABELS, it["text"], k=k,
                                                                            mode=mode))
            inner.classify(dataclasses.replace(build_prompt(action, it["text"], LABELS, examples), calibration=()))
            times["retrieved"].append(time.perf_counter() - start)
        retriever.close()
        memory.close()
    return {form: statistics.median(t) for form, t in times.items()}


def make_config(teacher_url: str, **memory):
    data = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())
    data["escalation"]["chain"] = ["LOCAL_FAST", "API_FALLBACK"]
    data["actions"] = {"classify": data["actions"]["classify"]}
    data["quality"]["per_action"] = {}
    data["tiers"]["API_FALLBACK"][0]["base_url"] = teacher_url
    data["budgets"] = {"daily_usd": None, "monthly_usd": None}
    data["memory"] = {**data.get("memory", {}), **memory}
    return parse_config(yaml.safe_dump(data), "llm_config.yaml (bench: teacher on loopback)",
                        env={"ANTHROPIC_API_KEY": "sk-bench-teacher"})


# --------------------------------------------------------------------------- one stream


ARMS = ("off", "on", "on+R")


def run_stream(items, seed: int, noise: float, arm: str, replay: ScoreReplay, every: int,
               min_verified: int, k: int = 4, mode: str = "hybrid", batch: int = 8,
               audit_rate: float | None = None) -> dict:
    """One pass over the stream in one arm (:data:`ARMS`), ``batch`` messages
    at a time through :meth:`Router.route_many` (as the daemon batches label
    objectives, ``daemon.batch_max``), the batch's records, audits and index
    sync after it; returns per-message outcomes and timings (``route_s``
    without the model time of prompts scored now).  ``audit_rate``:
    ``memory.audit_rate`` (``None``: the shipped config's)."""
    cleaned = {" ".join(it["text"].split())[:100]: it["label"] for it in items}
    teacher = Teacher(cleaned, noise, seed)
    memory_on, retrieval = arm != "off", arm == "on+R"
    config = make_config(teacher.url, min_verified=min_verified, retrieval_examples=k if retrieval else 0,
                         retrieval_mode=mode, **({} if audit_rate is None else {"audit_rate": audit_rate}))
    order = list(items)
    random.Random(seed).shuffle(order)
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "memory.db") if memory_on else None
        retriever = open_retriever(config, memory) if retrieval else None
        gate = RouterMemory(memory, retriever=retriever, k=config.memory.retrieval_examples,
                            mode=config.memory.retrieval_mode) if memory_on else None
        router = Router(config, provider_factory=replay, memory=gate)
        rows, route_s, learn_s, consolidate_s = [], 0.0, 0.0, 0.0
        for lo in range(0, len(order), batch):     # the daemon's batches: route_many, then records
            chunk = order[lo:lo + batch]
            oids = [f"s{seed}-{lo + j + 1}" for j in range(len(chunk))]
            model_before = replay.total_seconds()
            start = time.perf_counter()
            results = router.route_many("classify", [it["text"] for it in chunk], LABELS, objective_ids=oids)
            route_s += time.perf_counter() - start - (replay.total_seconds() - model_before)
            for item, oid, result in zip(chunk, oids, results):
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
                local = next((a for a in result.attempts if a.tier == "LOCAL_FAST"), None)
                rows.append({"tier": result.tier, "status": result.status, "correct": result.answer == item["label"],
                             "teacher_agrees": result.answer == teacher.answer(" ".join(item["text"].split())[:100]),
                             "teacher_calls": teacher_calls, "cost": cost,
                             "form": local.prompt if local is not None else None})
            start = time.perf_counter()
            if retriever is not None:
                retriever.sync_all()
            learn_s += time.perf_counter() - start
            done = lo + len(chunk)
            if memory_on and done // every > lo // every and done < len(order):
                start = time.perf_counter()
                consolidate(memory, config, retriever)
                consolidate_s += time.perf_counter() - start
        router.close()
        if retriever is not None:
            retriever.close()
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
            "local_accepted": len(local), "cache_hits": len(cache), "cache_right": sum(r["correct"] for r in cache),
            "cache_as_teacher": sum(r.get("teacher_agrees", False) for r in cache),
            "retrieved": sum(r["form"] == "retrieved" for r in rows) / len(rows)}


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
    ap.add_argument("--data", default=str(DATA), help="JSONL of commit messages with 'text' and 'label' (default: "
                                                      "examples/commits-commitizen.jsonl)")
    ap.add_argument("--audit-rate", type=float, help="memory.audit_rate of the memory arms (default: the shipped "
                                                     "config's)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--noise", default="0,0.15", help="teacher error rates to run, comma-separated")
    ap.add_argument("--consolidate-every", type=int, default=100)
    ap.add_argument("--min-verified", type=int, default=100)
    ap.add_argument("--arms", default=",".join(ARMS), help=f"arms to run, comma-separated (of {', '.join(ARMS)})")
    ap.add_argument("--k", type=int, default=4, help="retrieved examples in the on+R arm (default 4)")
    ap.add_argument("--mode", default="hybrid", choices=("vector", "bm25", "hybrid"))
    ap.add_argument("--batch", type=int, default=8, help="messages routed together (route_many), as daemon.batch_max")
    ap.add_argument("--time-items", type=int, default=40,
                    help="messages timed A/B (fixed vs retrieved prompt) on the real model at the end (0 = none)")
    ap.add_argument("--fill-only", type=int, metavar="SEED",
                    help="only run seed SEED's streams, to fill the score file <scores stem>-SEED.json (the "
                         "model's work; runs for several seeds can share the cores), then print nothing")
    ap.add_argument("--runs-dir", help="with --fill-only: also keep each stream's outcome there; without: "
                                       "read the streams from there (written by --fill-only runs with the same "
                                       "arguments) instead of running them, and read the A/B timing there too")
    ap.add_argument("--time-only", action="store_true",
                    help="only the A/B timing of the model per prompt form, kept in --runs-dir")
    ap.add_argument("--synthetic", type=int, help="only time a consolidation of this many synthetic records")
    ap.add_argument("--scores", default=str(ROOT / "data" / "bench" / "learning-scores.json"),
                    help="file keeping the model's label scores between runs ('' = none)")
    args = ap.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if args.synthetic:
        synthetic(args.synthetic)
        return 0
    arms = [a for a in ARMS if a in args.arms.split(",")]
    if "off" not in arms:
        ap.error("--arms must include off (the baseline)")
    items = [json.loads(line) for line in Path(args.data).read_text().splitlines()][:args.n]
    replay = ScoreReplay(Path(args.scores) if args.scores else None)
    runs_dir = Path(args.runs_dir) if args.runs_dir else None

    def kept(seed, noise, arm) -> Path:
        data = "" if Path(args.data).resolve() == DATA else f"{Path(args.data).stem}-"
        audits = "" if args.audit_rate is None else f"-a{args.audit_rate:g}"
        return runs_dir / f"stream-{data}n{len(items)}-s{seed}-noise{noise:g}-{arm}-k{args.k}-{args.mode}{audits}.json"

    if args.time_only:
        runs_dir.mkdir(parents=True, exist_ok=True)
        (runs_dir / "time-forms.json").write_text(json.dumps({**time_forms(items, replay, args.k, args.mode,
                                                                           args.time_items), "n": args.time_items}))
        return 0
    if args.fill_only is not None:
        replay.path = replay.path.with_name(f"{replay.path.stem}-{args.fill_only}.json")
        for noise in [float(x) for x in args.noise.split(",")]:
            for arm in arms:
                out = run_stream(items, args.fill_only, noise, arm, replay, args.consolidate_every,
                                 args.min_verified, args.k, args.mode, args.batch, args.audit_rate)
                replay.save()
                if runs_dir:
                    runs_dir.mkdir(parents=True, exist_ok=True)
                    kept(args.fill_only, noise, arm).write_text(json.dumps(out))
        console.print(f"seed {args.fill_only}: {replay.scored} prompts scored into {replay.path}")
        return 0
    if runs_dir is None:
        run_stream(items, 0, 0.0, "off", replay, args.consolidate_every, args.min_verified)   # the model scores all
        replay.save()
    summary = []
    for noise in [float(x) for x in args.noise.split(",")]:
        runs = {a: [] for a in arms}
        for seed in range(1, args.seeds + 1):
            for arm in arms:
                if runs_dir is not None:
                    runs[arm].append(json.loads(kept(seed, noise, arm).read_text()))
                    continue
                runs[arm].append(run_stream(items, seed, noise, arm, replay, args.consolidate_every,
                                            args.min_verified, args.k, args.mode, args.batch, args.audit_rate))
                replay.save()
        windows = range(0, len(items), 100)
        table = Table(title=f"{Path(args.data).name}, teacher noise {noise:.0%}: medians over {args.seeds} seeds per "
                            "100-message window "
                            f"({' → '.join(arms)})")
        for col in ("messages", "accuracy", "answered w/o teacher", "teacher calls", "cost USD",
                    "false-accept of local answers", "max FA over seeds", "retrieved-form share"):
            table.add_column(col)
        per = {a: [[window_stats(r["rows"][w:w + 100]) for w in windows] for r in runs[a]] for a in arms}
        for wi, w in enumerate(windows):
            cell = lambda key, pct=False: " → ".join(fmt(med([s[wi][key] for s in per[a]]), pct) for a in arms)
            worst = " → ".join(fmt(max((s[wi]["false_accept"] or 0.0) for s in per[a]), True) for a in arms)
            table.add_row(f"{w + 1}-{w + 100}", cell("accuracy", True), cell("no_teacher", True),
                          cell("teacher_calls"), cell("cost"), cell("false_accept", True), worst,
                          cell("retrieved", True))
        console.print(table)
        summary.append((noise, runs))
    replay.save()
    console.print(f"prompts scored by the model in this run: {replay.scored['fixed']} fixed, "
                  f"{replay.scored['retrieved']} retrieved (the others read from {args.scores})")
    if runs_dir is not None:
        timing = runs_dir / "time-forms.json"
        seconds = json.loads(timing.read_text()) if timing.exists() else {}
        args.time_items = seconds.pop("n", args.time_items)
    else:
        seconds = time_forms(items, replay, args.k, args.mode, args.time_items) if args.time_items else {}
    if seconds:
        console.print(f"embedded model (Gemma 3 270M), {args.time_items} messages A/B interleaved, median s per prompt: "
                      f"fixed {seconds['fixed']:.3f} ({1 / seconds['fixed']:.2f} items/s), with {args.k} retrieved "
                      f"examples {seconds['retrieved']:.3f} ({1 / seconds['retrieved']:.2f} items/s, retrieval "
                      f"included): {seconds['fixed'] / seconds['retrieved']:.2f}× "
                      f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    summary = [(noise, {a: arm_summary(runs[a], runs["off"], len(items), seconds) for a in arms})
               for noise, runs in summary]
    alpha = make_config("http://127.0.0.1:9").quality.max_false_accept
    table = Table(title=f"targets (issue 10): {Path(args.data).name}, {len(items)} messages, {args.seeds} seeds, "
                        f"memory.audit_rate {make_config('http://127.0.0.1:9').memory.audit_rate if args.audit_rate is None else args.audit_rate:g}")
    for col in ("teacher noise", "arm", "target", "measured", "met"):
        table.add_column(col)
    for noise, by_arm in summary:
        n = f"{noise:.0%}"
        for arm in arms:
            if arm == "off":
                continue
            m = by_arm[arm]
            table.add_row(n, arm, f"after msg 200: local FA ≤ {alpha:.0%} in every seed (msgs 201-{len(items)})",
                          "max " + fmt(m["fa_after200_max"], True) + " (" +
                          ", ".join(fmt(v, True) for v in m["fa_after200"]) + ")",
                          "yes" if m["fa_after200_max"] <= alpha else "no")
            table.add_row(n, arm, "  information: worst 100-message window after msg 200",
                          fmt(m["worst_window"], True), "")
            table.add_row(n, arm, "last 300: answered w/o teacher, arm − off ≥ +10 points",
                          f"{100 * (m['gain'] or 0):+.1f} points", "yes" if (m["gain"] or 0) >= 0.10 else "no")
            table.add_row(n, arm, "last 300: local FA arm ≤ off", f"{fmt(m['fa'], True)} vs {fmt(m['fa_off'], True)}",
                          "yes" if (m["fa"] or 0) <= (m["fa_off"] or 0) else "no")
            table.add_row(n, arm, "router items/s arm ≥ 0.7 × off (route() only, scores replayed)",
                          f"{m['rate']:.0f} vs {m['rate_off']:.0f} = {m['rate'] / m['rate_off']:.2f}×",
                          "yes" if m["rate"] >= 0.7 * m["rate_off"] else "no")
            if seconds:
                table.add_row(n, arm, "  items/s with the model's median time per prompt of its form added",
                              f"{m['rate_model']:.2f} vs {m['rate_model_off']:.2f} = "
                              f"{m['rate_model'] / m['rate_model_off']:.2f}×",
                              "yes" if m["rate_model"] >= 0.7 * m["rate_model_off"] else "no")
            table.add_row(n, arm, "cache-tier hit precision ≥ 98%",
                          f"{m['cache_right']}/{m['cache_hits']} = "
                          f"{fmt(m['cache_right'] / m['cache_hits'] if m['cache_hits'] else None, True)}",
                          ("yes" if m["cache_right"] / m["cache_hits"] >= 0.98 else "no") if m["cache_hits"] else "–")
            table.add_row(n, arm, "  information: cache answers equal to the teacher's own answer",
                          f"{m['cache_as_teacher']}/{m['cache_hits']}", "")
            table.add_row(n, arm, "consolidation time per run (median s, ≤ 600 records)", f"{m['consolidate_s']:.1f}", "")
            table.add_row(n, arm, "recording (teacher record, audit, index sync) per message, ms",
                          f"{m['learn_ms']:.2f}", "")
    console.print(table)
    return 0


def arm_summary(runs: list[dict], off: list[dict], n: int, seconds: dict[str, float]) -> dict:
    """The targets' numbers of one arm's runs (one per seed) against the same
    seeds' ``off`` runs; ``seconds``: the model's time per prompt of each form
    (:func:`time_forms`; empty: not measured)."""
    def with_model(rs):
        return n * len(rs) / sum(r["route_s"] + sum(seconds.get(row["form"], 0.0) for row in r["rows"]
                                                    if row["form"]) for r in rs)

    last = [window_stats(r["rows"][-300:]) for r in runs]
    last_off = [window_stats(r["rows"][-300:]) for r in off]
    after = [window_stats(r["rows"][200:])["false_accept"] or 0.0 if n > 200 else 0.0 for r in runs]
    whole = [window_stats(r["rows"]) for r in runs]
    return {
        "fa_after200": after, "fa_after200_max": max(after),
        "worst_window": max((window_stats(r["rows"][200:][w:w + 100])["false_accept"] or 0.0)
                            for r in runs for w in range(0, n - 200, 100)) if n > 200 else 0.0,
        "gain": med([a["no_teacher"] - b["no_teacher"] for a, b in zip(last, last_off)]),
        "fa": med([s["false_accept"] for s in last]), "fa_off": med([s["false_accept"] for s in last_off]),
        "rate": n * len(runs) / sum(r["route_s"] for r in runs),
        "rate_off": n * len(off) / sum(r["route_s"] for r in off),
        "rate_model": with_model(runs), "rate_model_off": with_model(off),
        "cache_hits": sum(s["cache_hits"] for s in whole), "cache_right": sum(s["cache_right"] for s in whole),
        "cache_as_teacher": sum(s["cache_as_teacher"] for s in whole),
        "consolidate_s": statistics.median(r["consolidate_s"] for r in runs),
        "learn_ms": 1000 * sum(r["learn_s"] for r in runs) / (n * len(runs)),
    }


if __name__ == "__main__":
    sys.exit(main())
