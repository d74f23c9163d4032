"""Prompt building: retrieved examples go in the body, after the cached prefix."""

from __future__ import annotations

from pathlib import Path

from swarmd.config import load_config
from swarmd.router.prompts import build_prompt

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("build", "docs", "feat", "fix")


def test_retrieved_examples_follow_the_unchanged_prefix():
    action = load_config(ROOT / "src" / "swarmd" / "llm_config.yaml", env={}).actions["classify"]
    plain = build_prompt(action, "fix the README link", LABELS)
    long = "x" * 300
    with_examples = build_prompt(action, "fix the README link", LABELS,
                                 examples=(("update the install docs", "docs"), ("tidy", "style"), (long, "fix")))
    assert with_examples.prefix == plain.prefix                 # the KV-cached part is the same
    assert with_examples.body == ("Message: update the install docs\nType: docs\n\n"      # style: not a label here
                                  f"Message: {'x' * action.input_max_chars}\nType: fix\n\n" + plain.body)
    assert with_examples.text.endswith("Message: fix the README link\nType:")
