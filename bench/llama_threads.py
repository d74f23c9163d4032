"""Benchmark: the embedded model's classify call at 1 and 2 llama.cpp threads.

    python bench/llama_threads.py [--n 150] [--threads 1,2]

Runs the first ``--n`` commit messages of ``examples/commits-commitizen.jsonl``
through :class:`swarmd.router.providers.llama_cpp.LlamaCppProvider.classify`
(the shipped ``classify`` prompt, the ten labels, KV reuse of the few-shot
prefix) once per thread count, in the same run, and prints the median
milliseconds per call, items/s and the ratio to the first thread count. It
tells how much a second core buys a worker, which decides whether
``swarmd --workers N`` with ``n_threads: 1`` or one worker with ``n_threads: 2``
uses a machine better (keep workers × n_threads ≤ cores; see llm_config.yaml).
Each thread count loads its own model instance (``n_threads`` bounds prompt
evaluation too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import load_config  # noqa: E402
from swarmd.router.prompts import build_prompt  # noqa: E402
from swarmd.router.providers.llama_cpp import LlamaCppProvider  # noqa: E402

DATA = ROOT / "examples" / "commits-commitizen.jsonl"


def run(config, items, labels, threads: int) -> list[float]:
    """Seconds per classify call for ``items`` with a model at ``threads`` threads."""
    model = config.tiers["LOCAL_FAST"][0].model_copy(update={"n_threads": threads})
    provider = LlamaCppProvider(model)
    action = config.actions["classify"]
    provider.classify(build_prompt(action, "warm-up: evaluate the few-shot prefix", labels))
    times = []
    for item in items:
        start = time.perf_counter()
        provider.classify(build_prompt(action, item["text"], labels))
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    """Run the benchmark and print its table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=150, help="messages per thread count (default 150)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--config", default=str(ROOT / "src" / "swarmd" / "llm_config.yaml"))
    args = parser.parse_args(argv)
    try:
        counts = [int(t) for t in args.threads.split(",")]
        assert counts and all(c > 0 for c in counts)
    except (ValueError, AssertionError):
        parser.error(f"--threads: expected positive integers separated by commas, found {args.threads!r}")
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    labels = tuple(sorted({r["label"] for r in rows}))
    config = load_config(args.config)
    results = {c: run(config, rows[:args.n], labels, c) for c in counts}
    table = Table(title=f"embedded classify call, {args.n} messages per thread count")
    for col in ("threads", "median ms/call", "items/s", f"speed vs {counts[0]} thread(s)"):
        table.add_column(col)
    base = len(results[counts[0]]) / sum(results[counts[0]])
    for c, times in results.items():
        rate = len(times) / sum(times)
        table.add_row(str(c), f"{statistics.median(times) * 1000:.1f}", f"{rate:.2f}", f"{rate / base:.2f}×")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
