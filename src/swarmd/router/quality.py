"""The quality gate: how much to trust one answer.

``confidence = model probability × format factor``, clamped to [0, 1]:

* model probability — for label outputs, the probability of the chosen label
  in the distribution the model gave over the label set, or the provider's
  calibrated confidence when it has one (an action's ``label_calibration`` in the config); for free text,
  exp(mean token logprob); for backends with neither (Anthropic), the model's
  configured ``prior_confidence``.
* format factor — 0 when the answer is empty, is a refusal (a configured
  phrase matched on word boundaries), is JSON that must parse and does not, or
  is a label outside the set; 1 otherwise.

An answer is accepted when ``confidence >= threshold`` (``quality.threshold``
in the config, 0.7 by default, with per-action overrides).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from swarmd.router.providers.base import Completion, Prompt


@dataclass(frozen=True)
class Verdict:
    """The gate's reading of one answer: the parsed ``answer``, its
    ``confidence`` in [0, 1], and ``problem`` (``None`` or why the format
    check failed)."""

    answer: str
    confidence: float
    problem: str | None = None


@lru_cache(maxsize=64)
def _refusal_re(phrases: tuple[str, ...]) -> re.Pattern | None:
    if not phrases:
        return None
    alts = "|".join(re.escape(p).replace("'", "['’]") for p in phrases)
    return re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)


def parse_label(text: str, labels: tuple[str, ...]) -> str | None:
    """The label an answer names: its first word, compared case-insensitively
    and without punctuation; ``None`` when that word is not in ``labels``."""
    words = re.findall(r"[\w-]+", text.lower())
    if not words:
        return None
    lowered = {label.lower(): label for label in labels}
    return lowered.get(words[0])


def _extract_json(text: str) -> str:
    """The JSON part of a reply: strips a Markdown code fence if there is one."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    return (fenced.group(1) if fenced else text).strip()


def assess(prompt: Prompt, completion: Completion, refusal_phrases: tuple[str, ...] = (),
           prior_confidence: float = 0.9) -> Verdict:
    """Score one completion for ``prompt`` (see the module docstring for the rule).

    Never raises: any answer, however malformed, gets a :class:`Verdict`.
    """
    text = (completion.text or "").strip()
    if prompt.output in ("label", "yes_no") and completion.label_probs:
        best = max(completion.label_probs, key=completion.label_probs.get)
        p = completion.confidence if completion.confidence is not None else completion.label_probs[best]
        return Verdict(best, _clamp(p))
    if not text:
        return Verdict("", 0.0, "empty answer")
    pattern = _refusal_re(tuple(refusal_phrases))
    if pattern and pattern.search(text):
        return Verdict(text, 0.0, "refusal")
    p = completion.mean_token_prob
    p = prior_confidence if p is None else p
    answer = text
    if prompt.output in ("label", "yes_no"):
        label = parse_label(text, prompt.labels)
        if label is None:
            return Verdict(text, 0.0, f"label not in set {list(prompt.labels)}")
        answer = label
    elif prompt.output == "labels":
        parts = [s.strip() for s in re.split(r"[,\n]", text) if s.strip()]
        chosen = [parse_label(s, prompt.labels) for s in parts]
        if not chosen or any(c is None for c in chosen):
            return Verdict(text, 0.0, f"labels not all in set {list(prompt.labels)}")
        answer = ",".join(dict.fromkeys(chosen))
    elif prompt.output == "json":
        body = _extract_json(text)
        try:
            json.loads(body)
        except ValueError as exc:
            return Verdict(text, 0.0, f"JSON does not parse: {exc}")
        answer = body
    return Verdict(answer, _clamp(p))


def _clamp(x: float) -> float:
    return 0.0 if x != x else max(0.0, min(1.0, float(x)))  # NaN -> 0
