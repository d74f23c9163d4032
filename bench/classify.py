"""Benchmark: commit-type classification through the router vs a naive baseline.

    python bench/classify.py [--n 600] [--baseline-n 100] [--batch-max 8] [--config llm_config.yaml]

Router: the 600 commitizen commit messages (examples/commits-commitizen.jsonl)
through :class:`swarmd.router.Router` with the ten Conventional Commits types
in the data as labels.  With no Ollama and no API key here, only LOCAL_FAST
answers; the other tiers are skipped after their first connection refusal.

Baseline (same run, same model file, same instruction and few-shot examples
as the system message): plain llama-cpp-python chat-style generation of the
label, one ``create_chat_completion`` call per message, the label parsed from
the reply; once as llama-cpp-python does it (it reuses the prefix shared with
the previous call) and once with the context cleared before each call.  It runs on the first ``--baseline-n`` messages
(default 100: at ~1 s per message the full 600 would take ~10 minutes; its
speed is per item, so a subset measures it fairly).

The router runs each message twice: one at a time (:meth:`Router.route`) and
in batches of ``--batch-max`` (:meth:`Router.route_many`: the embedded model
decodes a batch's bodies together, sharing the few-shot prefix's KV state),
the two passes interleaved by chunks of 48 messages (which goes first
alternates), so that the machine's changing speed falls on both alike; the
batched run must give identical answers and confidences.

Printed: items/s (median of per-chunk rates and overall), accuracy against
the authors' labels, AUROC of the router's confidence vs correctness,
accuracy and coverage of answers accepted at the threshold, and the ratio of
router to baseline items/s — for all messages and, separately, for messages
300–599, which the shipped ``label_calibration`` was not fitted on.

``--fit-calibration`` refits that calibration: it scores messages 0–299 with
the embedded model (calibration off), fits a logistic regression of
correctness on ln p(chosen label) (Platt scaling) and prints the
``label_calibration`` lines for ``llm_config.yaml``.  Targets on 2 cores: ≥ 6 items/s, ≥ 8× baseline,
AUROC ≥ 0.70, accepted-answer accuracy ≥ 0.70.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import load_config  # noqa: E402
from swarmd.costs import Ledger  # noqa: E402
from swarmd.router import Router  # noqa: E402
from swarmd.router.quality import parse_label  # noqa: E402

DATA = ROOT / "examples" / "commits-commitizen.jsonl"


def auroc(scores: list[float], positives: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties as 1/2); 0.5 = chance."""
    pos = [s for s, p in zip(scores, positives) if p]
    neg = [s for s, p in zip(scores, positives) if not p]
    if not pos or not neg:
        return float("nan")
    ranked = sorted((s, i) for i, s in enumerate(scores))
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ranked[k][1]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = sum(r for r, p in zip(ranks, positives) if p)
    return (r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


FIT_SLICE = slice(0, 300)       # messages the shipped calibration was fitted on
HELD_OUT = slice(300, 600)      # messages it was not


def fit_calibration(items, labels, config) -> dict:
    """Score ``items`` with the embedded model (calibration off) and fit a
    ``label_calibration`` entry on them (:func:`fit_label_calibration`)."""
    import dataclasses

    from swarmd.router.prompts import build_prompt
    from swarmd.router.providers.llama_cpp import LlamaCppProvider
    provider = LlamaCppProvider(config.tiers["LOCAL_FAST"][0])
    rows, truth = [], []
    for item in items:
        prompt = build_prompt(config.actions["classify"], item["text"], labels)
        c = provider.classify(dataclasses.replace(prompt, calibration=()))    # calibration off
        rows.append([c.extra["label_logprobs"][lab] for lab in labels])
        truth.append(labels.index(item["label"]))
    from swarmd.router.calibration import fit_label_calibration
    return fit_label_calibration(rows, truth, labels)


def calibration_yaml(model: str, fit: dict) -> str:
    """The ``label_calibration`` lines for ``llm_config.yaml`` (6 indents)."""
    def mapping(d):
        return "{" + ", ".join(f"{k}: {v:.4f}" for k, v in d.items()) + "}"
    return (f"    label_calibration:   # actions.classify\n"
            f"      - model: {model}\n"
            f"        scale: {fit['scale']:.4f}\n"
            f"        bias: {mapping(fit['bias'])}\n"
            f"        slope: {fit['slope']:.4f}\n"
            f"        intercept: {fit['intercept']:.4f}\n"
            f"        label_intercept: {mapping(fit['label_intercept'])}")


def summarize(results, items, threshold) -> dict:
    """Accuracy, AUROC, coverage and accepted-answer accuracy of router results."""
    correct = [r.answer == it["label"] for r, it in zip(results, items)]
    conf = [r.confidence for r in results]
    accepted = [c >= threshold for c in conf]
    n_acc = sum(accepted)
    return {
        "n": len(items), "accuracy": sum(correct) / len(items), "auroc": auroc(conf, correct),
        "threshold": threshold, "coverage": n_acc / len(items),
        "accepted_accuracy": (sum(c for c, a in zip(correct, accepted) if a) / n_acc) if n_acc else float("nan"),
    }


#: messages per interleaved chunk of :func:`run_router_pair`
CHUNK = 48


def run_router_pair(items, labels, config, batch: int) -> tuple[dict, dict | None]:
    """Route ``items`` one at a time (:meth:`Router.route`) and, with
    ``batch`` > 1, also in batches of ``batch`` (:meth:`Router.route_many`:
    one batched decode per group), the two passes interleaved by chunks of
    :data:`CHUNK` messages (which goes first alternates), so that the
    machine's changing speed falls on both alike.  Returns the two summaries
    (:func:`summarize` plus answers, confidences, seconds, items/s and the
    median of per-chunk items/s); the second is None for ``batch`` 1."""
    modes = (1, batch) if batch > 1 else (1,)
    with tempfile.TemporaryDirectory() as tmp:
        router = Router(config, Ledger(Path(tmp) / "bench.db"))
        router.route("classify", "warm-up: load the model", labels)      # model load not timed
        results = {m: [] for m in modes}
        seconds = {m: 0.0 for m in modes}
        chunk_rates = {m: [] for m in modes}
        for c, lo in enumerate(range(0, len(items), CHUNK)):
            texts = [item["text"] for item in items[lo:lo + CHUNK]]
            for m in (modes if c % 2 == 0 else modes[::-1]):
                start = time.perf_counter()
                if m == 1:
                    got = [router.route("classify", text, labels) for text in texts]
                else:
                    got = []
                    for k in range(0, len(texts), m):
                        got += router.route_many("classify", texts[k:k + m], labels)
                took = time.perf_counter() - start
                results[m] += got
                seconds[m] += took
                chunk_rates[m].append(len(texts) / took)
        router.close()
    threshold = config.quality.threshold_for("classify")
    out = []
    for m in modes:
        r = summarize(results[m], items, threshold)
        r.update(answers=[x.answer for x in results[m]], confidences=[x.confidence for x in results[m]])
        r.update(seconds=seconds[m], items_per_s=len(items) / seconds[m],
                 median_chunk_items_per_s=statistics.median(chunk_rates[m]))
        if len(items) > HELD_OUT.start:
            r["held_out"] = summarize(results[m][HELD_OUT], items[HELD_OUT], threshold)
        out.append(r)
    return out[0], (out[1] if len(out) > 1 else None)


def run_baseline(items, labels, config, model_path: str, n_threads: int | None, reset: bool = False) -> dict:
    """Chat-style generation of the label, one call per message, with the same
    instruction and few-shot examples as the router (as the system message).
    llama-cpp-python itself reuses the longest prompt prefix shared with the
    previous call; ``reset=True`` clears the context first, so every prompt is
    computed anew."""
    from llama_cpp import Llama

    from swarmd.router.prompts import build_prompt
    llm = Llama(model_path=model_path, n_ctx=2048, n_threads=n_threads, verbose=False)
    system = build_prompt(config.actions["classify"], "x", labels).prefix.strip() + \
        f"\n\nAnswer with exactly one word from: {', '.join(labels)}."
    correct, times = [], []
    for item in items:
        if reset:
            llm.reset()
        start = time.perf_counter()
        reply = llm.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": item["text"]}],
            max_tokens=8, temperature=0.0)
        times.append(time.perf_counter() - start)
        answer = parse_label(reply["choices"][0]["message"]["content"] or "", tuple(labels))
        correct.append(answer == item["label"])
    return {"n": len(items), "seconds": sum(times), "items_per_s": len(items) / sum(times),
            "median_s_per_item": statistics.median(times), "accuracy": sum(correct) / len(items)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="messages through the router (default 600)")
    parser.add_argument("--baseline-n", type=int, default=100, help="messages through the baseline (default 100; 0 skips)")
    parser.add_argument("--config", default=str(ROOT / "src" / "swarmd" / "llm_config.yaml"))
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    parser.add_argument("--batch-max", type=int, default=None,
                        help="also route the messages in batches of this many (Router.route_many; default "
                             "daemon.batch_max of the config; 1 skips)")
    parser.add_argument("--fit-calibration", action="store_true",
                        help="fit label_calibration on messages 0-299 and print it (no benchmark)")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    items = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    labels = tuple(sorted({it["label"] for it in items}))
    config = load_config(args.config)
    args.batch_max = config.daemon.batch_max if args.batch_max is None else args.batch_max
    if args.fit_calibration:
        fit = fit_calibration(items[FIT_SLICE], labels, config)
        print(calibration_yaml(config.tiers["LOCAL_FAST"][0].model, fit))
        return 0
    router, batched = run_router_pair(items[:args.n], labels, config, batch=args.batch_max)
    baseline = uncached = None
    if args.baseline_n:
        from swarmd.router.providers.llama_cpp import embedded_model_path
        model = config.tiers["LOCAL_FAST"][0]
        path = model.path or embedded_model_path(model.quantization)
        baseline = run_baseline(items[:args.baseline_n], labels, config, path, model.n_threads)
        uncached = run_baseline(items[:args.baseline_n // 2], labels, config, path, model.n_threads, reset=True)

    console = Console()
    table = Table(title=f"commit-type classification ({len(labels)} labels)")
    for col in ("system", "items", "items/s", "accuracy", "AUROC", f"accepted acc. (conf ≥ {router['threshold']})", "coverage"):
        table.add_column(col)
    table.add_row("swarmd router", str(router["n"]), f"{router['items_per_s']:.2f} (median chunk {router['median_chunk_items_per_s']:.2f})",
                  f"{router['accuracy']:.3f}", f"{router['auroc']:.3f}", f"{router['accepted_accuracy']:.3f}",
                  f"{router['coverage']:.3f}")
    if batched:
        table.add_row(f"swarmd router, batches of {args.batch_max}", str(batched["n"]),
                      f"{batched['items_per_s']:.2f} (median chunk {batched['median_chunk_items_per_s']:.2f})",
                      f"{batched['accuracy']:.3f}", f"{batched['auroc']:.3f}", f"{batched['accepted_accuracy']:.3f}",
                      f"{batched['coverage']:.3f}")
    if "held_out" in router:
        h = router["held_out"]
        table.add_row("  messages 300-599 (not fitted on)", str(h["n"]), "", f"{h['accuracy']:.3f}", f"{h['auroc']:.3f}",
                      f"{h['accepted_accuracy']:.3f}", f"{h['coverage']:.3f}")
    if baseline:
        table.add_row("naive chat generation", str(baseline["n"]), f"{baseline['items_per_s']:.2f}",
                      f"{baseline['accuracy']:.3f}", "-", "-", "-")
        table.add_row("  same, prompt recomputed per call", str(uncached["n"]), f"{uncached['items_per_s']:.2f}",
                      f"{uncached['accuracy']:.3f}", "-", "-", "-")
    console.print(table)
    if batched:
        answers = sum(a == b for a, b in zip(batched["answers"], router["answers"]))
        confs = sum(a == b for a, b in zip(batched["confidences"], router["confidences"]))
        console.print(f"batched / one at a time items/s: {batched['items_per_s'] / router['items_per_s']:.2f}× "
                      f"(target ≥ 1.3); identical answers {answers}/{router['n']}, identical confidences "
                      f"{confs}/{router['n']}")
    if baseline:
        console.print(f"router / naive chat generation items/s: {router['items_per_s'] / baseline['items_per_s']:.1f}×; "
                      f"router / same with the prompt recomputed: {router['items_per_s'] / uncached['items_per_s']:.1f}×")
    if args.json:
        print(json.dumps({"router": router, "batched": batched, "baseline": baseline, "baseline_uncached": uncached}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
