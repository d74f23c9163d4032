"""Benchmark: per-call overhead of swarmd's Router against LiteLLM's Router.

    python bench/router_overhead.py [--calls 2000] [--rounds 5]

Both routers get a zero-latency model, so a call's wall time is the router's
own overhead:

* **swarmd**: :class:`swarmd.router.Router` over the shipped
  ``llm_config.yaml`` with LOCAL_FAST switched to the ``echo`` provider
  (answers at once with the first label, probability 1), action ``classify``
  with three labels.  A call builds the few-shot prompt, checks the request,
  skips cooling-down models, calls the provider, runs the quality gate and
  records one cost-ledger row in SQLite (a file of its own in a temp dir):
  queued for the ledger's writer thread (``Ledger(write_behind=True)``, as
  ``swarmctl ask`` runs it), and, in a second row of the table, committed
  inside the call (``write_behind=False``).
* **LiteLLM**: ``litellm.Router`` with one deployment answering with
  ``mock_response`` (no network), the same input as one user message.  Its
  bookkeeping: what it does by default (cost of the response from its model
  cost map, deployment usage/cool-down tracking) plus a ``CustomLogger`` that
  writes the same ledger row to SQLite — LiteLLM runs success callbacks on a
  background thread, so that write is not inside its timed call, while
  swarmd's is.

Each router runs in a process of its own (LiteLLM's logging threads would
otherwise take the GIL inside swarmd's timed calls); each round times
``--calls`` calls of swarmd, then ``--calls`` of LiteLLM, one process at a
time (interleaved rounds, so that both see the same load on a shared
machine), after 200 untimed warm-up calls each.  Printed: p50 and p99 of all timed calls
per router in microseconds and the ratio LiteLLM / swarmd.  Targets: swarmd
p50 ≤ 500 µs and p99 ≤ 1000 µs, and ≥ 5× below LiteLLM.

LiteLLM is not a swarmd dependency; install it for this benchmark only::

    pip install litellm

Without it, only swarmd's numbers are printed (with a note).
``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set before LiteLLM is imported, so it
reads its bundled cost map instead of fetching one from the network.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/queue_throughput.py is named like the stdlib module `queue` (imported by redis, which LiteLLM imports)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no cost-map download at import
os.environ.setdefault("LITELLM_TELEMETRY", "False")

from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import parse_config  # noqa: E402
from swarmd.costs import Ledger, LedgerRow  # noqa: E402
from swarmd.router import Router  # noqa: E402
from swarmd.testing.configs import with_fast_provider  # noqa: E402

LABELS = ("feat", "fix", "docs")
WARM_UP = 200


def inputs(n: int, offset: int = 0) -> list[str]:
    """``n`` distinct commit-message-like inputs (distinct, so no layer can cache them)."""
    return [f"fix crash {offset + i} when the changelog file is empty" for i in range(n)]


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class SwarmdSide:
    """swarmd's Router with the echo provider and a write-behind SQLite cost
    ledger (as ``swarmctl ask`` runs it)."""

    name = "swarmd (write-behind ledger)"
    write_behind = True

    def __init__(self, tmp: Path):
        text = with_fast_provider((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text(), "echo")
        self.ledger = Ledger(tmp / "swarmd-ledger.db", write_behind=self.write_behind)
        self.router = Router(parse_config(text, "llm_config.yaml (LOCAL_FAST: echo)"), self.ledger)

    def call(self, text: str) -> None:
        result = self.router.route("classify", text, LABELS)
        assert result.status == "accepted" and result.answer == LABELS[0], result

    def close(self, calls: int) -> int:
        """Close; returns the ledger rows written (one per call is expected)."""
        self.router.close()
        rows = len(self.ledger.rows())
        self.ledger.close()
        return rows


class SwarmdSyncSide(SwarmdSide):
    """The same with the ledger row committed inside the call."""

    name = "swarmd (ledger row committed in the call)"
    write_behind = False


class LiteLLMSide:
    """LiteLLM's Router with one ``mock_response`` deployment and a ledger callback."""

    name = "LiteLLM (ledger row by its logging thread)"

    def __init__(self, tmp: Path):
        import litellm
        from litellm.integrations.custom_logger import CustomLogger

        ledger = self.ledger = Ledger(tmp / "litellm-ledger.db")

        class LedgerCallback(CustomLogger):
            def log_success_event(self, kwargs, response_obj, start_time, end_time):
                usage = response_obj.usage
                ledger.record(LedgerRow(action="classify", tier="LITELLM", provider="mock",
                                        model=kwargs.get("model", ""), tokens_in=usage.prompt_tokens,
                                        tokens_out=usage.completion_tokens,
                                        cost_usd=kwargs.get("response_cost") or 0.0,
                                        latency_ms=(end_time - start_time).total_seconds() * 1000,
                                        confidence=None, outcome="accepted"))

        self.callback = LedgerCallback()
        litellm.callbacks = [self.callback]
        litellm.telemetry = False
        litellm.suppress_debug_info = True
        self.router = litellm.Router(model_list=[{
            "model_name": "classify",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "not-used", "mock_response": LABELS[0]},
        }])

    def call(self, text: str) -> None:
        reply = self.router.completion(model="classify", messages=[{"role": "user", "content": text}])
        assert reply.choices[0].message.content == LABELS[0], reply

    def close(self, calls: int) -> int:
        """Close once its logging thread has written ``calls`` rows (at most
        30 s); returns the ledger rows written."""
        deadline = time.monotonic() + 30
        while len(rows := self.ledger.rows()) < calls and time.monotonic() < deadline:
            time.sleep(0.1)
        self.ledger.close()
        return len(rows)


def timed(side, texts: list[str]) -> list[tuple[float, float]]:
    """``(wall, cpu)`` microseconds of each call of ``side`` over ``texts``:
    wall-clock time and the CPU time of the calling thread (which excludes
    time the process spent descheduled by other load on the machine)."""
    out = []
    for text in texts:
        start, cpu = time.perf_counter(), time.thread_time()
        side.call(text)
        out.append(((time.perf_counter() - start) * 1e6, (time.thread_time() - cpu) * 1e6))
    return out


def serve(kind: str, conn) -> None:
    """Child process of one router: build it, warm it up, then time each
    ``(n, offset)`` round it receives and send back the microseconds.  Sends
    ``("missing", text)`` instead when LiteLLM is not installed."""
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            side = SIDES[kind](Path(tmp))
        except ModuleNotFoundError as exc:
            if exc.name != "litellm":
                raise
            conn.send(("missing", str(exc)))
            return
        timed(side, inputs(WARM_UP, offset=-WARM_UP))
        conn.send(("ready", side.name))
        calls = WARM_UP
        while (job := conn.recv()) is not None:
            conn.send(timed(side, inputs(*job)))
            calls += job[0]
        conn.send((side.close(calls), calls))


SIDES = {"swarmd": SwarmdSide, "swarmd-sync": SwarmdSyncSide, "litellm": LiteLLMSide}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per router per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 150))
    ctx = multiprocessing.get_context("spawn")
    sides = []                      # (name, connection, process)
    for kind in SIDES:              # each router in a process of its own: LiteLLM's background
        parent, child = ctx.Pipe()  # threads must not take the GIL inside swarmd's timed calls
        proc = ctx.Process(target=serve, args=(kind, child), daemon=True)
        proc.start()
        status, text = parent.recv()
        if status == "missing":
            console.print(f"[yellow]LiteLLM is not installed ({text}): only swarmd is measured. Install it for "
                          "this benchmark with `pip install litellm` (it is not a swarmd dependency).")
            proc.join()
            continue
        sides.append((text, parent, proc))
    load = os.getloadavg()[0]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in sides}
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in sides}
    for r in range(args.rounds):
        for name, conn, _ in sides:             # one router at a time
            conn.send((args.calls, r * args.calls))
            us = conn.recv()
            samples[name] += us
            wall = [w for w, _ in us]
            rounds[name].append((percentile(wall, 0.5), percentile(wall, 0.99)))
    ledgered = {}
    for name, conn, proc in sides:
        conn.send(None)
        ledgered[name] = conn.recv()
        proc.join(timeout=30)

    table = Table(title=f"router overhead per call, zero-latency model ({args.rounds} rounds × {args.calls} calls; "
                        f"load average {load:.1f} on {os.cpu_count()} CPUs)")
    for col in ("router", "wall p50 µs", "wall p99 µs", "CPU p50 µs", "CPU p99 µs", "descheduled > 0.5 ms",
                "per-round wall p50 / p99 µs", "ledger rows / calls"):
        table.add_column(col)
    stats = {}
    for name, _, _ in sides:
        wall, cpu = [w for w, _ in samples[name]], [c for _, c in samples[name]]
        stats[name] = (percentile(wall, 0.5), percentile(wall, 0.99), percentile(cpu, 0.5), percentile(cpu, 0.99))
        descheduled = sum(w - c > 500 for w, c in samples[name]) / len(wall)
        table.add_row(name, *(f"{x:.0f}" for x in stats[name]), f"{descheduled:.1%} of calls",
                      ", ".join(f"{a:.0f}/{b:.0f}" for a, b in rounds[name]), "{} / {}".format(*ledgered[name]))
    console.print(table)
    s50, s99, c50, c99 = stats[sides[0][0]]
    console.print(f"swarmd wall p50 {s50:.0f} µs (target ≤ 500), wall p99 {s99:.0f} µs (target ≤ 1000); "
                  f"CPU p50 {c50:.0f} µs, CPU p99 {c99:.0f} µs")
    if LiteLLMSide.name in stats:
        l50, l99, lc50, lc99 = stats[LiteLLMSide.name]
        console.print(f"LiteLLM / swarmd: wall p50 {l50 / s50:.1f}×, wall p99 {l99 / s99:.1f}×, "
                      f"CPU p50 {lc50 / c50:.1f}×, CPU p99 {lc99 / c99:.1f}× (target ≥ 5×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
