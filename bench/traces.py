"""Benchmark execution traces (learner-follower) on repeated development chores.

Run: ``python bench/traces.py [--per-family 10] [--seed 7]`` from the repo
root (PYTHONPATH=src if swarmd is not installed).

50 free-text objectives (10 per family, families interleaved) in generated
workspaces, each with its own parameter values and file contents:

* ``tests``     — run the unittest suite in a directory and report how many tests failed;
* ``version``   — bump the version in a ``.toml`` file and verify it;
* ``pattern``   — count the lines holding a marker in a directory, and the files;
* ``csv``       — convert a CSV file to JSON (a converter script is written, then run);
* ``changelog`` — add an entry under a version heading of a changelog.

The strong model is a loopback server speaking the Anthropic Messages API,
reached through the official client by the router's API tier (the local
tiers point at closed ports, so every planner, agent and verification call
goes to it). It plays a strong model that solves each family correctly: it
reads the goal, plans, proposes each step, and writes the answer from the
step outputs in its prompt; asked to verify a supervised replay
(``actions.verify_trace``), it works out the answer from the step outputs in
the prompt and says yes when the replay's answer is that one. Usage is
reported as characters / 4 tokens and priced at the shipped config's API
prices ($2 / $10 per million tokens in / out).

Every tool call runs through the real governor (shipped policy.yaml) and its
sandbox. A result is a success when the objective ends ``done``, the answer
states the values the bench computed when it generated the workspace, and the
workspace holds the expected files.

Configurations, each over fresh workspaces of the same objectives:
``no traces`` (the baseline: every objective is a learner run);
``unsupervised @0.9`` (the shipped ``traces.follow_threshold`` without
supervision, ``traces.supervise_from: null``: a new trace starts at 0.75 and
gains (1 - c) * 0.1 per learner run reproducing it, so it is first followed
after 9 confirmations); ``unsupervised @0.75`` (followers from the second
objective of a family, no verification: a comparison); ``supervised @0.9
(default)`` (the shipped settings: follow threshold 0.9, supervised from
0.75, so from the second objective of a family a replay is verified by the
strong model with one short call until the trace reaches 0.9, after 9
verified replays). Latency is wall time per objective (median); cost is USD
per objective (mean). A second table compares a learner run's tokens and
cost with a verification call's (medians over the runs of the supervised
configuration and of the baseline).

``--similarity`` prints instead the cosine similarities of the goals'
MiniLM template embeddings (and of their ``tokens-v1`` vectors), same family
vs other family, over the generated goals plus :data:`PARAPHRASES` and
:data:`OTHER_TASKS`: the data ``traces.min_embedding_similarity`` was picked
from; then that choice checked on data it was not made on: the rule
(:func:`rule_threshold`) fitted on one half of those goals and scored on the
other (:func:`split_table`), and the held-out goals of other chores in
``bench/data/trace_goals_heldout.yaml`` (:func:`heldout_tables`: misses and
false matches by threshold).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
# bench/ holds queue.py, which would shadow the standard library's queue module
sys.path[:] = [str(REPO / "src")] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import yaml  # noqa: E402
from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import VERIFY_ACTION, parse_config  # noqa: E402
from swarmd.costs.ledger import LEARNER, TRACE_TIER  # noqa: E402
from swarmd.daemon.redis_server import free_port  # noqa: E402
from swarmd.governor import AuditBuffer, Governor, load_policy  # noqa: E402
from swarmd.agent.traces import TraceStore  # noqa: E402
from swarmd.router import Router  # noqa: E402
from swarmd.agent.loop import workspace_dir  # noqa: E402
from swarmd.agent.follower import run_with_traces  # noqa: E402

FAMILIES = ("tests", "version", "pattern", "csv", "changelog")
CSV2JSON = """import csv, json, os, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, newline="") as fh:
    rows = list(csv.DictReader(fh))
os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
with open(dst, "w") as fh:
    json.dump(rows, fh)
print(len(rows))
"""

#: goals of the families worded otherwise (family, goal)
PARAPHRASES = (
    ("tests", "Execute the unit tests under tests/ and tell me how many fail"),
    ("tests", "Run the test suite in checks/ and report the number of failures"),
    ("version", "Set the version in RELEASE.txt to 4.0.2 and verify it"),
    ("version", "Change the version of Cargo.toml to 2.0.0 and check it"),
    ("pattern", "Count lines with 'TODO' in src/ and summarize the counts"),
    ("csv", "Turn data/sales.csv into JSON at out/sales.json"),
    ("changelog", "Put the entry 'Fix crash' into CHANGELOG.md under version 1.2.3"),
)
#: goals of other tasks, several with a family's parameter signature
OTHER_TASKS = (
    "Publish VERSION.txt as release 2.3.1 on the mirror",
    "Delete the version in pyproject.toml 1.2.0 and commit it",
    "Count the 'FIXME' markers in lib/",
    "Download https://x.org/a.csv to data/a.csv",
    "Run the linter on src/ and report how many warnings",
    "Convert out/x.json to CSV in data/x.csv",
)

# --------------------------------------------------------------------------- the strong model

GOALS = {
    "tests": re.compile(r"Run the tests in (\S+) and report how many failed"),
    "version": re.compile(r"Bump the version in (\S+) to (\S+) and verify it"),
    "pattern": re.compile(r"Count the lines containing '([^']+)' in (\S+) and summarise the counts"),
    "csv": re.compile(r"Convert (\S+) to JSON in (\S+)"),
    "changelog": re.compile(r"Add the entry '([^']+)' to (\S+) under version (\S+)"),
}
_STEP = r"\d+\. (?:shell|read_file|write_file|http_get)"
_TOOL_STEP = _STEP + r" \{"
#: a step as the verification input shows it (swarmd.agent.follower.verify_input)
_VERIFIED_STEP = _STEP + ": "


def _steps(family: str, g: tuple[str, ...]) -> list[dict]:
    """The strong model's tool calls for one goal (``g``: the goal's values)."""
    sh = lambda c: {"tool": "shell", "args": {"command": c}}     # noqa: E731
    if family == "tests":
        return [sh(f"python3 -m unittest discover -s {g[0]} -p 'test_*.py' 2>&1 | tail -n 3")]
    if family == "version":
        return [sh(f"sed -i 's/^version = \".*\"/version = \"{g[1]}\"/' {g[0]}"),
                sh(f"grep -c '^version = \"{g[1]}\"' {g[0]}")]
    if family == "pattern":
        return [sh(f"grep -r {g[0]} {g[1]} | wc -l"), sh(f"grep -rl {g[0]} {g[1]} | wc -l")]
    if family == "csv":
        return [{"tool": "write_file", "args": {"path": "csv2json.py", "content": CSV2JSON}},
                sh(f"python3 csv2json.py {g[0]} {g[1]}"), sh(f"cat {g[1]}")]
    return [sh(f"sed -i '/^## {g[2]}$/a - {g[0]}' {g[1]}"), sh(f"grep -c -- '- {g[0]}' {g[1]}")]


def _answer(family: str, g: tuple[str, ...], outputs: list[str]) -> str:
    """The strong model's final answer, read from the step outputs in its prompt."""
    if family == "tests":
        ran = re.search(r"Ran (\d+) tests?", outputs[0])
        failed = re.search(r"failures=(\d+)", outputs[0])
        return f"{failed.group(1) if failed else 0} of {ran.group(1) if ran else '?'} tests failed"
    first = [o.split()[0] if o.split() else "?" for o in outputs]
    if family == "version":
        return f"{g[0]} is now at version {g[1]} ({first[1]} matching line)"
    if family == "pattern":
        return f"{first[0]} lines contain {g[0]} in {g[1]}, across {first[1]} files"
    if family == "csv":
        return f"Converted {first[1]} records from {g[0]} to {g[1]}"
    return f"Added '{g[0]}' under {g[2]} in {g[1]} ({first[1]} entry)"


def _family(goal: str) -> tuple[str, re.Match] | None:
    """The family whose goal pattern ``goal`` matches, with the match."""
    for family, pattern in GOALS.items():
        m = pattern.search(goal)
        if m:
            return family, m
    return None


def _outputs(steps: str) -> list[str]:
    """The ``output:`` parts of rendered steps (agent prompt or verification input)."""
    return re.findall(rf"output: (.*?)(?= {_TOOL_STEP}| {_VERIFIED_STEP}|\s*Next step:|\s*Verified:|$)", steps, re.S)


def verify_reply(prompt: str) -> str:
    """The strong model's verdict on a supervised replay: ``yes`` when the
    replay's answer is the one it works out from the goal and the step
    outputs in the prompt, else ``no``."""
    m = re.search(r"Goal: (.*?) Answer: (.*?) Steps: (.*)", prompt.rsplit("\n\n", 1)[-1], re.S)
    found = _family(m.group(1)) if m else None
    if found is None:
        return "no"
    family, goal = found
    return "yes" if _answer(family, goal.groups(), _outputs(m.group(3))) == m.group(2) else "no"


def strong_reply(prompt: str) -> str:
    """What the strong model answers to one prompt of the ``plan``, ``agent`` or ``verify_trace`` action."""
    if prompt.rstrip().endswith("Verified:"):
        return verify_reply(prompt)
    tail = prompt.rsplit("Objective:", 1)[-1]
    planning = tail.rstrip().endswith("Steps:")
    goal = tail.rsplit("Steps:", 1)[0] if planning else tail.split(" Plan: ", 1)[0].split("Steps so far:", 1)[0]
    found = _family(goal)
    if found is None:
        return json.dumps(["understand the goal"]) if planning else json.dumps({"done": "I cannot do that"})
    family, m = found
    steps = _steps(family, m.groups())
    if planning:
        return json.dumps([f"step {i}: {s['tool']}" for i, s in enumerate(steps, 1)])
    so_far = tail.split("Steps so far:", 1)[1]
    done = len(re.findall(_TOOL_STEP, so_far))
    if done < len(steps):
        return json.dumps(steps[done])
    return json.dumps({"done": _answer(family, m.groups(), _outputs(so_far))})


class StrongModel(ThreadingHTTPServer):
    """``POST /v1/messages`` on loopback, answered by :func:`strong_reply` in the
    Messages API shape; usage = characters / 4 (at least 1) each way."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.calls = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        content = body["messages"][-1]["content"]
        prompt = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        text = strong_reply(prompt)
        self.server.calls += 1
        data = json.dumps({"id": f"msg_{self.server.calls}", "type": "message", "role": "assistant",
                           "model": body["model"], "content": [{"type": "text", "text": text}],
                           "stop_reason": "end_turn", "stop_sequence": None,
                           "usage": {"input_tokens": max(1, len(prompt) // 4), "output_tokens": max(1, len(text) // 4),
                                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

# --------------------------------------------------------------------------- objectives and workspaces


def make_objectives(per_family: int, seed: int, drift: bool = False) -> list[dict]:
    """``per_family`` objectives of each family, interleaved: ``{"id", "family",
    "goal", "files": {path: text}, "expect": {...}}`` (the values to check).
    ``drift``: the middle ``tests`` objective's suite has no failing test (its
    summary line is ``OK``: a replay's validation fails and the learner takes over)."""
    rng = random.Random(seed)
    words = ["login", "cache", "parser", "upload", "report", "export", "search", "billing", "sync", "theme"]
    out = []
    for i in range(per_family):
        for family in FAMILIES:
            out.append({"id": f"{family}-{i:02d}", "family": family,
                        **_generate(family, rng, words, i, drift and i == per_family // 2)})
    return out


def _generate(family: str, rng: random.Random, words: list[str], i: int, drift: bool) -> dict:
    if family == "tests":
        d = rng.choice(["tests", "test", "checks"]) + "/"
        n = rng.randint(4, 12)
        failed = 0 if drift else rng.randint(1, min(5, n - 1))
        body = "import unittest\n\n\nclass T(unittest.TestCase):\n" + "".join(
            f"    def test_{k}(self):\n        self.assertEqual({k}, {k if k >= failed else k + 1})\n\n"
            for k in range(n))
        return {"goal": f"Run the tests in {d} and report how many failed",
                "files": {f"{d}test_suite.py": body}, "expect": {"answer": f"{failed} of {n} tests failed"}}
    if family == "version":
        f = rng.choice(["pyproject.toml", "Cargo.toml", "package.toml"])
        old, new = f"0.{rng.randint(1, 9)}.{rng.randint(0, 9)}", f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{i}"
        text = f'[project]\nname = "{rng.choice(words)}"\nversion = "{old}"\nrequires = ["x>=1.0.0"]\n'
        return {"goal": f"Bump the version in {f} to {new} and verify it", "files": {f: text},
                "expect": {"file": f, "contains": f'version = "{new}"', "answer": new}}
    if family == "pattern":
        marker, d = rng.choice(["TODO", "FIXME", "XXX", "HACK"]), rng.choice(["src", "lib", "app"]) + "/"
        files, lines = {}, 0
        for k in range(rng.randint(2, 5)):
            hits = rng.randint(1, 4) if k else rng.randint(2, 4)      # more lines than files
            lines += hits
            files[f"{d}mod{k}.py"] = "".join(f"x = {j}  # {marker} fix {rng.choice(words)}\n" for j in range(hits)) \
                + "def f():\n    return 1\n"
        files[f"{d}clean.py"] = "def g():\n    return 2\n"
        return {"goal": f"Count the lines containing '{marker}' in {d} and summarise the counts", "files": files,
                "expect": {"answer": f"{lines} lines contain {marker} in {d}, across {len(files) - 1} files"}}
    if family == "csv":
        src = f"data/{rng.choice(words)}.csv"
        dst = f"out/{rng.choice(words)}-{i}.json"
        rows = [{"name": rng.choice(words), "qty": str(rng.randint(1, 99)), "city": rng.choice(["Oslo", "Lima", "Pune"])}
                for _ in range(rng.randint(2, 6))]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, ["name", "qty", "city"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return {"goal": f"Convert {src} to JSON in {dst}", "files": {src: buf.getvalue()},
                "expect": {"json": dst, "rows": rows, "answer": f"Converted {len(rows)} records"}}
    entry = f"Fix {rng.choice(words)} {rng.choice(['timeout', 'crash', 'typo', 'leak'])}"
    f, v = rng.choice(["CHANGELOG.md", "HISTORY.md"]), f"1.{rng.randint(0, 9)}.{i}"
    text = f"# Changelog\n\n## {v}\n\n- Earlier change\n\n## 0.9.0\n\n- First release\n"
    return {"goal": f"Add the entry '{entry}' to {f} under version {v}", "files": {f: text},
            "expect": {"file": f, "after": (f"## {v}", f"- {entry}"), "answer": entry}}


def correct(obj: dict, ws: Path, state: str, answer: str | None) -> bool:
    """Did the objective end ``done`` with the expected answer and workspace?"""
    e = obj["expect"]
    if state != "done" or not answer or e["answer"] not in answer:
        return False
    try:
        if "contains" in e:
            return (ws / e["file"]).read_text().count(e["contains"]) == 1
        if "json" in e:
            return json.loads((ws / e["json"]).read_text()) == e["rows"]
        if "after" in e:
            lines = (ws / e["file"]).read_text().splitlines()
            return lines[lines.index(e["after"][0]) + 1] == e["after"][1]
    except (OSError, ValueError, IndexError):
        return False
    return True

# --------------------------------------------------------------------------- running


def bench_config(url: str, threshold: float | None, supervise_from: float | None = None):
    """The shipped config: local tiers on closed ports, API tier = the strong model;
    ``threshold=None``: traces off; ``supervise_from``: ``traces.supervise_from``
    (``None``: no supervised following)."""
    data = yaml.safe_load((REPO / "src" / "swarmd" / "llm_config.yaml").read_text())
    dead = {"provider": "ollama", "model": "down", "hosts": [f"http://127.0.0.1:{free_port()}"],
            "price_per_mtok_in": 0, "price_per_mtok_out": 0, "context_window": 8192, "timeout_s": 5}
    api = dict(data["tiers"]["API_FALLBACK"][0], base_url=url)
    data["tiers"] = {"LOCAL_FAST": [dead], "LOCAL_QUALITY": [dict(dead)], "API_FALLBACK": [api]}
    data["traces"] = {"enabled": threshold is not None, "follow_threshold": threshold or 0.9,
                      "supervise_from": supervise_from}
    data["budgets"] = {"daily_usd": None, "monthly_usd": None}
    return parse_config(yaml.safe_dump(data), "bench", env={"ANTHROPIC_API_KEY": "sk-bench"})


def _calls(attempts: list[dict], keep) -> dict:
    """Tokens in/out and USD of the attempts ``keep`` selects (``n``: how many)."""
    chosen = [a for a in attempts if keep(a)]
    return {"n": len(chosen), "in": sum(a["tokens_in"] for a in chosen), "out": sum(a["tokens_out"] for a in chosen),
            "usd": sum(a["cost_usd"] for a in chosen)}


def run(objectives: list[dict], model: StrongModel, threshold: float | None, root: Path,
        supervise_from: float | None = None) -> tuple[list[dict], str]:
    """Every objective once, in order, over fresh workspaces: one row per
    objective, and the traces at the end (``traces/versions, confidence range``)."""
    config = bench_config(model.url, threshold, supervise_from)
    governor = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"), audit=AuditBuffer())
    store = TraceStore(root / "memory.db") if threshold is not None else None
    router = Router(config)
    family_of_trace: dict[str, str] = {}
    rows, traces = [], "-"
    try:
        for obj in objectives:
            ws = workspace_dir(root, obj["id"])
            for name, text in obj["files"].items():
                (ws / name).parent.mkdir(parents=True, exist_ok=True)
                (ws / name).write_text(text)
            start = time.perf_counter()
            out = run_with_traces({"id": obj["id"], "action": "agent", "input": obj["goal"], "tags": ["chore"]},
                                  router, governor, config, ws, store)
            ms = (time.perf_counter() - start) * 1000
            governor.audit.drain()
            if store is not None and out.trace:
                touched = store.apply(out.trace, config.traces.min_similarity,
                                      min_embedding_similarity=config.traces.min_embedding_similarity)
                if out.trace.get("learn") and touched:
                    family_of_trace.setdefault(touched[-1][0], obj["family"])
            replayed = [a["model"].split("@")[0] for a in out.attempts if a["tier"] == TRACE_TIER]
            verify = _calls(out.attempts, lambda a: a.get("action") == VERIFY_ACTION)
            rows.append({"family": obj["family"], "mode": out.result.get("mode") or LEARNER,
                         "ok": correct(obj, ws, out.state, out.result.get("answer")),
                         "cost": float(out.result.get("cost_usd") or 0.0), "ms": ms, "tried_trace": bool(replayed),
                         "cross": any(family_of_trace.get(t, obj["family"]) != obj["family"] for t in replayed),
                         "learner": _calls(out.attempts, lambda a: a.get("mode") == LEARNER), "verify": verify,
                         "rejected": any(a.get("action") == VERIFY_ACTION and a["answer"] == "no"
                                         for a in out.attempts)})
        if store is not None:
            stored = [store.load(r) for r in store.rows(all_versions=True)]
            active = [t.confidence for t in stored if t.active]
            traces = f"{len(active)}/{len(stored)}, {min(active):.3f}-{max(active):.3f}" if active else "0/0"
    finally:
        router.close()
        if store is not None:
            store.close()
    return rows, traces


HELDOUT = REPO / "bench" / "data" / "trace_goals_heldout.yaml"
#: the step the threshold rule rounds down to, and the fixed seed of the split
RULE_STEP = 0.05
SPLIT_SEED = 13


def rule_threshold(same_best: list[float], other: list[float]) -> tuple[float, bool]:
    """The rule ``traces.min_embedding_similarity`` (0.85) was chosen by: the
    highest multiple of :data:`RULE_STEP` not above the lowest paraphrase-best
    similarity (every paraphrase still finds its family), which must lie above
    every other-family pair; returns ``(threshold, separated)``."""
    t = int(min(same_best) / RULE_STEP + 1e-9) * RULE_STEP
    return round(t, 4), t > max(other)


def _goal_vectors(goals: list[str]):
    from swarmd.memory.embed import shared_embedder
    from swarmd.agent.traces import extract_params, signature_of, template_of

    return shared_embedder().embed([template_of(g) for g in goals]), \
        [signature_of(extract_params(g)) for g in goals]


def _split_groups(items, vectors, sig, members: list[int], n_gen: int) -> dict[str, list[tuple[float, bool]]]:
    """Within ``members`` (indices of ``items``): (cosine, same signature) of
    same-family pairs, other-family pairs (two "other" goals are not compared)
    and each paraphrase's best against its family's generated goals."""
    import itertools

    groups: dict[str, list[tuple[float, bool]]] = {"same": [], "other": [], "para": []}
    for i, j in itertools.combinations(sorted(members), 2):
        if items[i][0] == items[j][0] == "other":
            continue
        groups["same" if items[i][0] == items[j][0] else "other"].append(
            (float(vectors[i] @ vectors[j]), sig[i] == sig[j]))
    for k in members:
        fam = [i for i in members if i < n_gen and items[i][0] == items[k][0]]
        if k >= n_gen and fam:
            groups["para"].append(max((float(vectors[k] @ vectors[i]), sig[k] == sig[i]) for i in fam))
    return groups


def split_table(items, vectors, sig, n_gen: int) -> Table:
    """Two-fold split of the bench's goals (shuffled with :data:`SPLIT_SEED`,
    stratified: generated, paraphrase and other goals each halved): the rule's
    threshold fitted on one half, errors counted on the other."""
    rng = random.Random(SPLIT_SEED)
    halves: list[list[int]] = [[], []]
    for part in (range(n_gen), [k for k in range(n_gen, len(items)) if items[k][0] != "other"],
                 [k for k in range(len(items)) if items[k][0] == "other"]):
        part = list(part)
        rng.shuffle(part)
        halves[0] += part[::2]
        halves[1] += part[1::2]
    table = Table(title=f"split of the {len(items)} goals (seed {SPLIT_SEED}): threshold by the rule on one half, "
                        "errors on the other (MiniLM cosine of templates)")
    for col in ("fit → eval", "fit: lowest para best / highest other", "threshold", "eval: same family min",
                "para best min / median", "other max (same signature)", "misses at fit / 0.85",
                "false matches at fit / 0.85 (same signature)"):
        table.add_column(col, justify="left" if col.startswith("fit →") else "right")
    groups = [_split_groups(items, vectors, sig, half, n_gen) for half in halves]
    for f, e in ((0, 1), (1, 0)):
        fit, ev = groups[f], groups[e]
        t, separated = rule_threshold([c for c, _s in fit["para"]], [c for c, _s in fit["other"]])
        para = [c for c, _s in ev["para"]]
        other_sig = [c for c, same in ev["other"] if same] or [float("nan")]

        def errors(th):
            miss = sum(c < th for c in para)
            false = sum(c >= th for c, _s in ev["other"])
            false_sig = sum(c >= th for c, same in ev["other"] if same)
            return miss, false, false_sig
        (m1, f1, s1), (m2, f2, s2) = errors(t), errors(0.85)
        table.add_row(f"half {'AB'[f]} ({len(halves[f])}) → half {'AB'[e]} ({len(halves[e])})",
                      f"{min(c for c, _s in fit['para']):.3f} / {max(c for c, _s in fit['other']):.3f}",
                      f"{t:.2f}" + ("" if separated else " (no gap)"),
                      f"{min(c for c, _s in ev['same']):.3f}", f"{min(para):.3f} / {statistics.median(para):.3f}",
                      f"{max(c for c, _s in ev['other']):.3f} ({max(other_sig):.3f})",
                      f"{m1}/{len(para)} / {m2}/{len(para)}",
                      f"{f1} ({s1}) / {f2} ({s2}) of {len(ev['other'])}")
    return table


class _Pair(NamedTuple):
    """Two held-out goals (indices ``i < j``): MiniLM cosine of their templates, same task, same
    parameter signature, tasks listed as a near miss."""

    i: int
    j: int
    cos: float
    same_task: bool
    same_sig: bool
    near: bool


def heldout_tables(thresholds: list[float]) -> list[Table]:
    """The held-out goals of :data:`HELDOUT` (other chores, written apart):
    same-task pairs below each threshold (misses), different-task pairs at or
    above it (false matches), all pairs and those with the same parameter
    signature (the only ones :meth:`TraceStore.match` compares); per goal,
    whether one of its own task still matches and whether another task does;
    and the near-miss task pairs."""
    import itertools

    import numpy as np

    data = yaml.safe_load(HELDOUT.read_text())
    goals = [(task, g) for task, gs in data["tasks"].items() for g in gs]
    near = {frozenset(p) for p in data["near_misses"]}
    vectors, sig = _goal_vectors([g for _t, g in goals])
    pairs = [_Pair(i, j, float(vectors[i] @ vectors[j]), goals[i][0] == goals[j][0], sig[i] == sig[j],
                   frozenset((goals[i][0], goals[j][0])) in near)
             for i, j in itertools.combinations(range(len(goals)), 2)]
    same = np.array([p.cos for p in pairs if p.same_task])
    same_sig = np.array([p.cos for p in pairs if p.same_task and p.same_sig])
    other = np.array([p.cos for p in pairs if not p.same_task])
    other_sig = np.array([p.cos for p in pairs if not p.same_task and p.same_sig])
    near_sig = np.array([p.cos for p in pairs if p.near and p.same_sig])
    sep = Table(title=f"held-out goals ({HELDOUT.relative_to(REPO)}): {len(goals)} goals, {len(data['tasks'])} tasks, "
                      f"{len(near)} near-miss task pairs; MiniLM cosine of templates")
    for col in ("pairs", "n", "min", "p5", "median", "p95", "max"):
        sep.add_column(col, justify="left" if col == "pairs" else "right")
    for name, arr in (("same task", same), ("same task, same signature", same_sig), ("other task", other),
                      ("other task, same signature", other_sig), ("near-miss tasks, same signature", near_sig)):
        sep.add_row(name, str(len(arr)), *(f"{x:.3f}" for x in (arr.min(), np.percentile(arr, 5), np.median(arr),
                                                                np.percentile(arr, 95), arr.max())))
    sweep = Table(title="held-out goals: errors by threshold (a false match replays another task's steps; "
                        "a miss costs a learner run)")
    for col in ("threshold", "same-task pairs missed (same signature)", "other-task pairs matched (same signature)",
                "near-miss pairs matched (same signature)", "goals finding no trace of their task",
                "goals matching another task's trace"):
        sweep.add_column(col, justify="right")
    # per goal, its best same-signature cosine with a goal of its own task and with one of another (None: no such pair)
    mine, theirs = [None] * len(goals), [None] * len(goals)
    for p in (p for p in pairs if p.same_sig):
        best = mine if p.same_task else theirs
        for k in (p.i, p.j):
            best[k] = p.cos if best[k] is None else max(best[k], p.cos)
    for th in thresholds:
        lonely = sum(m is not None and m < th for m in mine)
        captured = sum(t is not None and t >= th for t in theirs)
        sweep.add_row(f"{th:.2f}", f"{sum(same < th)}/{len(same)} ({sum(same_sig < th)}/{len(same_sig)})",
                      f"{sum(other >= th)}/{len(other)} ({sum(other_sig >= th)}/{len(other_sig)})",
                      f"{sum(near_sig >= th)}/{len(near_sig)}", f"{lonely}/{len(goals)}", f"{captured}/{len(goals)}")
    worst = Table(title="held-out goals: the most similar pairs of different tasks with the same signature")
    for col in ("cosine", "goal", "other task's goal"):
        worst.add_column(col, justify="right" if col == "cosine" else "left")
    for p in sorted((p for p in pairs if not p.same_task and p.same_sig), key=lambda p: -p.cos)[:8]:
        worst.add_row(f"{p.cos:.3f}", f"{goals[p.i][1]} [{goals[p.i][0]}]", f"{goals[p.j][1]} [{goals[p.j][0]}]")
    return [sep, sweep, worst]


def similarities(per_family: int, seed: int) -> int:
    """Print same-family vs other-family cosine similarities (MiniLM and tokens-v1) of goal
    templates over the bench's goals, then the split (:func:`split_table`) and the
    held-out goals (:func:`heldout_tables`)."""
    import itertools

    import numpy as np

    from swarmd.agent.traces import MIN_EMBEDDING_SIMILARITY, represent, similarity

    items = [(o["family"], o["goal"]) for o in make_objectives(per_family, seed)] + list(PARAPHRASES) \
        + [("other", g) for g in OTHER_TASKS]
    vectors, sig = _goal_vectors([g for _, g in items])
    groups: dict[str, list[tuple[float, float]]] = {"same family": [], "other family": [],
                                                   "other family, same signature": []}
    for i, j in itertools.combinations(range(len(items)), 2):
        if items[i][0] == items[j][0] == "other":
            continue
        pair = (float(vectors[i] @ vectors[j]), similarity(represent(items[i][1]), represent(items[j][1])))
        if items[i][0] == items[j][0]:
            groups["same family"].append(pair)
        else:
            groups["other family"].append(pair)
            if sig[i] == sig[j]:
                groups["other family, same signature"].append(pair)
    n_gen = per_family * len(FAMILIES)
    for k in range(n_gen, len(items)):                  # each paraphrase against its family's generated goals
        fam = [i for i in range(n_gen) if items[i][0] == items[k][0]]
        if fam:
            groups.setdefault("paraphrase vs its family (best)", []).append(
                max((float(vectors[k] @ vectors[i]), similarity(represent(items[k][1]), represent(items[i][1])))
                    for i in fam))
    table = Table(title=f"bench/traces.py --similarity: {len(items)} goals (seed {seed}), cosine of templates")
    for col in ("pairs", "n", "MiniLM min", "p5", "median", "p95", "max", "tokens-v1 min", "median", "max"):
        table.add_column(col, justify="left" if col == "pairs" else "right")
    for name, pairs in groups.items():
        m, t = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        table.add_row(name, str(len(pairs)), *(f"{x:.3f}" for x in (
            m.min(), np.percentile(m, 5), np.median(m), np.percentile(m, 95), m.max(), t.min(), np.median(t), t.max())))
    console = Console(width=220)
    console.print(table)
    console.print(split_table(items, vectors, sig, n_gen))
    thresholds = sorted({0.70, 0.75, 0.80, 0.85, 0.90, 0.92, 0.95, MIN_EMBEDDING_SIMILARITY})
    for t in heldout_tables(thresholds):
        console.print(t)
    print(f"shipped traces.min_embedding_similarity: {MIN_EMBEDDING_SIMILARITY}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-family", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drift", action="store_true", help="one tests objective whose suite passes (replay fails a check)")
    ap.add_argument("--similarity", action="store_true", help="print goal similarities by family instead")
    ns = ap.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    if ns.similarity:
        return similarities(ns.per_family, ns.seed)
    objectives = make_objectives(ns.per_family, ns.seed, ns.drift)
    model = StrongModel()
    results, traces = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, threshold, supervise in CONFIGURATIONS:
            results[name], traces[name] = run(objectives, model, threshold, Path(tmp) / f"run{len(results)}",
                                              supervise)
    model.shutdown()
    base = results["no traces"]
    base_cost = statistics.mean(r["cost"] for r in base)
    base_ok = sum(r["ok"] for r in base) / len(base)
    table = Table(title=f"bench/traces.py: {len(objectives)} objectives, {len(FAMILIES)} families "
                        f"(seed {ns.seed}{', drift' if ns.drift else ''}); learner = loopback strong model")
    for col in ("configuration", "success", "learner runs ok", "follower runs ok (fell back)",
                "of which supervised: verified (rejected)", "follower/learner success", "cost/objective USD (mean)",
                "cost vs no traces", "latency ms median (learner | follower)", "cross-family replays",
                "traces/versions, confidence at end"):
        table.add_column(col, justify="right" if col != "configuration" else "left")
    for name, rows in results.items():
        learners = [r for r in rows if r["mode"] == LEARNER]
        followers = [r for r in rows if r["mode"] != LEARNER]
        verified = [r for r in rows if r["mode"] == "supervised"]
        f_rate = sum(r["ok"] for r in followers) / len(followers) if followers else None
        cost = statistics.mean(r["cost"] for r in rows)
        lat = " | ".join(f"{statistics.median(r['ms'] for r in g):.0f}" if g else "-" for g in (learners, followers))
        table.add_row(name, f"{sum(r['ok'] for r in rows)}/{len(rows)}",
                      f"{sum(r['ok'] for r in learners)}/{len(learners)}",
                      f"{sum(r['ok'] for r in followers)}/{len(followers)} "
                      f"({sum(r['tried_trace'] and r['mode'] == 'learner' for r in rows)})",
                      f"{sum(r['ok'] for r in verified)}/{len(verified)} ({sum(r['rejected'] for r in rows)})",
                      f"{f_rate / base_ok:.2f}" if f_rate is not None and base_ok else "-",
                      f"{cost:.6f}", f"{cost / base_cost:.1%}" if base_cost else "-", lat,
                      str(sum(r["cross"] for r in rows)), traces[name])
    Console(width=220).print(table)
    print("targets: follower success >= 95% of learner success; cost with traces <= 20% of without; "
          "no trace applied across families")
    Console(width=220).print(token_table(base, results[SUPERVISED]))
    return 0


#: (name, traces.follow_threshold or None = traces off, traces.supervise_from)
CONFIGURATIONS = (("no traces", None, None), ("unsupervised @0.9", 0.9, None), ("unsupervised @0.75", 0.75, None),
                  ("supervised @0.9 (default)", 0.9, 0.75))
SUPERVISED = CONFIGURATIONS[-1][0]


def token_table(learned: list[dict], supervised: list[dict]) -> Table:
    """Per family: a learner run's tokens and USD (medians over ``learned``,
    the baseline's rows) against one verification call's (medians over the
    verified or rejected replays of ``supervised``)."""
    table = Table(title=f"learner run vs verification call (medians; verifications from '{SUPERVISED}')")
    for col in ("family", "learner runs", "tokens in / out", "USD", "verifications", "tokens in / out ",
                "USD ", "verification / learner USD"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for family in FAMILIES + ("all",):
        runs = [r["learner"] for r in learned if family in ("all", r["family"])]
        checks = [r["verify"] for r in supervised if r["verify"]["n"] and family in ("all", r["family"])]
        med = lambda xs, k: statistics.median(x[k] for x in xs) if xs else 0   # noqa: E731
        table.add_row(family, str(len(runs)), f"{med(runs, 'in'):.0f} / {med(runs, 'out'):.0f}",
                      f"{med(runs, 'usd'):.6f}", str(len(checks)),
                      f"{med(checks, 'in'):.0f} / {med(checks, 'out'):.0f}" if checks else "-",
                      f"{med(checks, 'usd'):.6f}" if checks else "-",
                      f"{med(checks, 'usd') / med(runs, 'usd'):.1%}" if checks and med(runs, "usd") else "-")
    return table


if __name__ == "__main__":
    raise SystemExit(main())
