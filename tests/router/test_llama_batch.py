"""Batched decoding on the embedded model (Gemma 3 270M in-process): label
prompts sharing a prefix decoded as sequences of one llama_decode give the
answers and confidences of the one-by-one path (bit-identical), at any place
in a batch; a prompt that cannot be evaluated fails alone; the router's
route_many equals route."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from swarmd.costs import Ledger
from swarmd.router import Router
from swarmd.router.prompts import build_prompt
from swarmd.router.providers import ProviderError
from tests.router.test_llama_cpp import LABELS, config, provider  # noqa: F401  (module-scoped fixtures)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [json.loads(line)["text"] for line in (ROOT / "examples" / "commits-commitizen.jsonl").read_text().splitlines()[:12]]


def test_batched_answers_and_confidences_equal_the_unbatched_ones(provider, config):
    prompts = [build_prompt(config.actions["classify"], text, LABELS) for text in MESSAGES]
    one_by_one = [provider.classify(p) for p in prompts]
    batched = provider.classify_batch(prompts)
    assert [c.text for c in batched] == [c.text for c in one_by_one]
    assert [c.confidence for c in batched] == [c.confidence for c in one_by_one]       # exactly
    assert [c.extra["label_logprobs"] for c in batched] == [c.extra["label_logprobs"] for c in one_by_one]
    # the same prompt twice in one batch: both copies as alone (rows padded per sequence)
    twice = provider.classify_batch([prompts[2], prompts[2]])
    assert twice[0].extra["label_logprobs"] == twice[1].extra["label_logprobs"] == one_by_one[2].extra["label_logprobs"]
    # and the one-by-one path no longer depends on what the context held before
    assert provider.classify(prompts[0]).extra["label_logprobs"] == one_by_one[0].extra["label_logprobs"]


def test_a_prompt_gets_the_same_scores_alone_first_or_later_in_a_batch(provider, config):
    # message 305: before the provider kept a hole of KV cells after the prefix, its body got
    # other logits when its cells followed the prefix's directly (alone, or first in a batch)
    # than anywhere else in a batch (ln p(build) -2.659 against -2.636)
    lines = (ROOT / "examples" / "commits-commitizen.jsonl").read_text().splitlines()
    texts = [json.loads(lines[i])["text"] for i in (304, 305)]
    other, prompt = [build_prompt(config.actions["classify"], t, LABELS) for t in texts]
    alone = provider.classify(prompt).extra["label_logprobs"]
    first = provider.classify_batch([prompt, other])[0].extra["label_logprobs"]
    second = provider.classify_batch([other, prompt])[1].extra["label_logprobs"]
    assert alone == first == second


def test_one_prompt_that_cannot_be_evaluated_fails_alone(provider, config):
    prompts = [build_prompt(config.actions["classify"], text, LABELS) for text in MESSAGES[:4]]
    too_long = replace(prompts[1], body="word " * 5000 + "\nType:")
    got = provider.classify_batch([prompts[0], too_long, prompts[2], prompts[3]])
    assert isinstance(got[1], ProviderError) and "exceeds the context window" in str(got[1])
    alone = [provider.classify(p) for p in (prompts[0], prompts[2], prompts[3])]
    assert [g.extra["label_logprobs"] for g in (got[0], got[2], got[3])] == [a.extra["label_logprobs"] for a in alone]


def test_prompts_of_other_label_sets_in_one_call_are_answered_in_their_own_groups(provider, config):
    action = config.actions["classify"]
    mixed = [build_prompt(action, MESSAGES[0], LABELS), build_prompt(action, MESSAGES[1], ("feat", "fix")),
             build_prompt(action, MESSAGES[2], LABELS), build_prompt(action, MESSAGES[3], ("feat", "fix"))]
    got = provider.classify_batch(mixed)
    assert [g.extra["label_logprobs"] for g in got] == [provider.classify(p).extra["label_logprobs"] for p in mixed]
    assert set(got[1].label_probs) == {"feat", "fix"}


def test_route_many_equals_route_one_by_one(config, tmp_path):
    router = Router(config, Ledger(tmp_path / "ledger.db"))
    ids = [f"m{i}" for i in range(len(MESSAGES))]
    many = router.route_many("classify", MESSAGES, LABELS, request_ids=ids, objective_ids=ids)
    single = [router.route("classify", text, LABELS, request_id=i) for i, text in zip(ids, MESSAGES)]
    assert [(r.id, r.answer, r.confidence, r.status, r.tier) for r in many] == \
           [(r.id, r.answer, r.confidence, r.status, r.tier) for r in single]
    rows = router.ledger.rows()
    assert sorted(r["objective_id"] for r in rows if r["objective_id"]) == sorted(ids)   # one row each (LOCAL_FAST)
    router.close()
