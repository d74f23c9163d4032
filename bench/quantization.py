"""Benchmark: the embedded model's weights as packaged (Q4_K_M) against the copy
requantized to Q8_0 that the shipped config uses (``quantization: q8_0``).

    python bench/quantization.py [--n 240] [--start 300] [--rounds 3] [--batch 8]

For each quantization, the commitizen messages ``start``..``start+n``
(default 300-539: neither shipped calibration was fitted on them; both were
fitted on 0-299 by ``bench/classify.py --fit-calibration``) are classified by
:class:`swarmd.router.providers.llama_cpp.LlamaCppProvider` with the ten
commit types as labels, once one at a time (:meth:`classify`) and once in
batches of ``--batch`` (:meth:`classify_batch`), each quantization with its
own shipped calibration.  The four passes run interleaved, ``--rounds``
times, so that the machine's changing speed falls on all of them alike;
items/s is the median over rounds.

Printed, per quantization: items/s one at a time and batched, their ratio
(issue 14's target for batching: >= 1.3), accuracy against the authors'
labels, coverage and accuracy of answers at confidence >= the quality
threshold, and whether the batched answers and confidences equal the
one-at-a-time ones; then Q8_0 against Q4_K_M items/s in each mode.

What limits batching on these machines (AMD EPYC with AVX and FMA, no AVX2),
measured on a synthetic body of 16 rows after a 357-token prefix: a body's
transformer rows cost the same alone or among 8 (35.6 against 36.4 ms with
the Q4_K_M weights); what a batch saves is the output layer, a 262,144 x 640
matrix read once for the batch instead of once per body (10.6 ms of a 46 ms
call).  So the longer the bodies, the smaller the gain: with the real bodies
(22 tokens on average, 26 rows padded) batches of 8 run ~1.2x.
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

DATA = ROOT / "examples" / "commits-commitizen.jsonl"
QUANTIZATIONS = ("q4_k_m", "q8_0")


def passes(provider, prompts, batch: int):
    """(one-at-a-time completions, seconds), (batched completions, seconds)."""
    start = time.perf_counter()
    alone = [provider.classify(p) for p in prompts]
    alone_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = []
    for lo in range(0, len(prompts), batch):
        batched += provider.classify_batch(prompts[lo:lo + batch])
    return (alone, alone_s), (batched, time.perf_counter() - start)


def quality(completions, items, threshold: float) -> dict:
    """Accuracy, and coverage and accuracy of the answers at confidence >= ``threshold``."""
    correct = [c.text == it["label"] for c, it in zip(completions, items)]
    accepted = [c.confidence is not None and c.confidence >= threshold for c in completions]
    n_acc = sum(accepted)
    return {"accuracy": sum(correct) / len(items), "coverage": n_acc / len(items),
            "accepted_accuracy": sum(c for c, a in zip(correct, accepted) if a) / n_acc if n_acc else float("nan")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=240, help="messages (default 240)")
    parser.add_argument("--start", type=int, default=300, help="first message (default 300: not fitted on)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--batch", type=int, default=8, help="prompts per batched decode (default 8)")
    parser.add_argument("--config", default=str(ROOT / "src" / "swarmd" / "llm_config.yaml"))
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.batch < 2:
        parser.error("--n and --rounds must be >= 1 and --batch >= 2")
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    from swarmd.router.providers.llama_cpp import LlamaCppProvider

    all_items = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    items = all_items[args.start:args.start + args.n]
    if not items:
        parser.error(f"no messages from {args.start}: the file has {len(all_items)}")
    labels = tuple(sorted({it["label"] for it in all_items}))
    config = load_config(args.config)
    action = config.actions["classify"]
    threshold = config.quality.threshold_for("classify")
    shipped = config.tiers["LOCAL_FAST"][0]
    providers = {}
    for q in QUANTIZATIONS:
        model = shipped.model_copy(update={"model": f"gemma-3-270m-{q}", "quantization": q, "path": None})
        providers[q] = LlamaCppProvider(model)
        providers[q].classify(build_prompt(action, "warm-up: load the model", labels))
    prompts = [build_prompt(action, it["text"], labels) for it in items]
    rates = {(q, mode): [] for q in QUANTIZATIONS for mode in ("alone", "batched")}
    last = {}
    for r in range(args.rounds):
        order = QUANTIZATIONS if r % 2 == 0 else QUANTIZATIONS[::-1]
        for q in order:
            (alone, alone_s), (batched, batched_s) = passes(providers[q], prompts, args.batch)
            rates[(q, "alone")].append(len(items) / alone_s)
            rates[(q, "batched")].append(len(items) / batched_s)
            last[q] = (alone, batched)
            print(f"round {r + 1}/{args.rounds} {q}: {len(items) / alone_s:.2f} items/s alone, "
                  f"{len(items) / batched_s:.2f} batched", file=sys.stderr)
    out = {"n": len(items), "start": args.start, "rounds": args.rounds, "batch": args.batch}
    table = Table(title=f"embedded model by quantization: messages {args.start}-{args.start + len(items) - 1}, "
                        f"median of {args.rounds} interleaved rounds")
    for col in ("weights", "items/s alone", f"items/s batches of {args.batch}", "batched / alone", "accuracy",
                f"coverage (conf ≥ {threshold})", "accepted accuracy", "batched = alone (answers, confidences)"):
        table.add_column(col)
    for q in QUANTIZATIONS:
        alone, batched = last[q]
        a, b = statistics.median(rates[(q, "alone")]), statistics.median(rates[(q, "batched")])
        same_answers = sum(x.text == y.text for x, y in zip(alone, batched))
        same_conf = sum(x.confidence == y.confidence for x, y in zip(alone, batched))
        qual = quality(alone, items, threshold)
        out[q] = {"alone_items_per_s": a, "batched_items_per_s": b, "ratio": b / a, "rates": {
            mode: rates[(q, mode)] for mode in ("alone", "batched")}, "same_answers": same_answers,
            "same_confidences": same_conf, **qual}
        table.add_row(q, f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}×", f"{qual['accuracy']:.3f}", f"{qual['coverage']:.3f}",
                      f"{qual['accepted_accuracy']:.3f}", f"{same_answers}/{len(items)}, {same_conf}/{len(items)}")
    console = Console()
    console.print(table)
    for mode in ("alone", "batched"):
        ratio = statistics.median(x / y for x, y in zip(rates[("q8_0", mode)], rates[("q4_k_m", mode)]))
        out[f"q8_0_over_q4_k_m_{mode}"] = ratio
        console.print(f"q8_0 / q4_k_m items/s {mode}: {ratio:.2f}× (median of per-round ratios)")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
