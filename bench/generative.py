"""Benchmark: can the embedded model (Gemma 3 270M, LOCAL_FAST) answer ``summarize`` on its own?

    python bench/generative.py [--n 20] [--show]

The question behind issue 22: with no Ollama and no API key, should
``summarize`` / ``extract`` under ``local_only`` fall back to the embedded
model, or should ``swarmctl submit`` refuse them?  The set: the first ``n``
commit messages of ``examples/commits-commitizen.jsonl`` that have a body
(over 300 characters; Dependabot bumps left out), each summarized with the
shipped ``summarize`` prompt by the shipped LOCAL_FAST model, up to its
``max_output_tokens``, temperature 0.

There is no reference summary, so each answer is judged by what can be
checked on the text itself (word-level, case-folded):

* ``empty`` — nothing generated;
* ``loop`` — some 4-word sequence occurs 3 times or more (the small model's
  typical failure: it repeats a sentence until the token cap);
* ``copy`` — 80% or more of its 5-word sequences occur in the input: an
  extract of the input's first lines, not a summary;
* ``novel`` — share of its words (4 letters or more) absent from the input:
  above 0.3 it says things the input does not (read them with ``--show``);
* ``usable`` — none of the above.

Printed: a table of the counts and shares, mean seconds per summary, the
gate's view (mean confidence; accepted at the action's threshold), and how
many accepted answers were not usable.  ``--show`` prints each input's
first line and the answer.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loguru import logger  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from swarmd.config import load_config  # noqa: E402
from swarmd.router.prompts import build_prompt  # noqa: E402
from swarmd.router.providers import make_provider  # noqa: E402
from swarmd.router.providers.base import Completion  # noqa: E402
from swarmd.router.quality import assess  # noqa: E402

DATA = ROOT / "examples" / "commits-commitizen.jsonl"
KINDS = ("usable", "empty", "loop", "copy", "novel")


def messages(n: int) -> list[str]:
    """The first ``n`` commitizen messages with a body (> 300 characters), Dependabot bumps left out."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows if len(r["text"]) > 300 and "dependency-name" not in r["text"]][:n]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def _grams(words: list[str], k: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + k]) for i in range(len(words) - k + 1)]


def judge(source: str, answer: str) -> tuple[str, float, float]:
    """``(kind, copied share, novel share)`` of one answer (see the module docstring)."""
    out, src = _words(answer), _words(source)
    if not out:
        return "empty", 0.0, 0.0
    fours = Counter(_grams(out, 4))
    fives, src_fives = _grams(out, 5), set(_grams(src, 5))
    copied = sum(g in src_fives for g in fives) / len(fives) if fives else 0.0
    long_words = [w for w in out if len(w) >= 4]
    src_words = set(src)
    novel = sum(w not in src_words for w in long_words) / len(long_words) if long_words else 0.0
    if fours and max(fours.values()) >= 3:
        return "loop", copied, novel
    if copied >= 0.8:
        return "copy", copied, novel
    if novel > 0.3:
        return "novel", copied, novel
    return "usable", copied, novel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="messages (default 20)")
    parser.add_argument("--show", action="store_true", help="print every input's first line and its summary")
    args = parser.parse_args()
    logger.remove()
    config = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={})
    action = config.actions["summarize"]
    model = config.tiers["LOCAL_FAST"][0]
    threshold = config.quality.threshold_for("summarize")
    provider = make_provider(model, config.escalation.cooldown_s)
    rows = []
    for text in messages(args.n):
        prompt = build_prompt(action, text)
        start = time.perf_counter()
        completion: Completion = provider.complete(prompt, model.max_output_tokens)
        seconds = time.perf_counter() - start
        verdict = assess(prompt, completion, tuple(config.quality.refusal_phrases), model.prior_confidence)
        kind, copied, novel = judge(text, completion.text or "")
        rows.append((text, completion.text or "", kind, copied, novel, verdict.confidence, seconds))
        if args.show:
            print(f"[{kind}] conf {verdict.confidence:.2f}  {text.splitlines()[0][:90]!r}\n    -> {(completion.text or '')[:300]!r}")
    n = len(rows)
    console = Console()
    table = Table(title=f"summarize by {model.model} (LOCAL_FAST) on {n} commitizen messages with a body")
    table.add_column("answer kind")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column(f"accepted (conf >= {threshold:.2f})", justify="right")
    counts = Counter(r[2] for r in rows)
    for kind in KINDS:
        accepted = sum(r[2] == kind and r[5] >= threshold for r in rows)
        table.add_row(kind, str(counts[kind]), f"{counts[kind] / n:.0%}", str(accepted))
    console.print(table)
    accepted = [r for r in rows if r[5] >= threshold]
    print(f"seconds per summary: mean {statistics.mean(r[6] for r in rows):.2f}, "
          f"max {max(r[6] for r in rows):.2f}; mean confidence {statistics.mean(r[5] for r in rows):.2f}; "
          f"accepted {len(accepted)}/{n}, of which not usable {sum(r[2] != 'usable' for r in accepted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
