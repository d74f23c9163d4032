"""Variants of the shipped ``llm_config.yaml`` for tests and benchmarks."""

from __future__ import annotations

import re


def with_fast_provider(text: str, provider: str) -> str:
    """``text`` (an ``llm_config.yaml``) with its first ``provider: llama_cpp``
    model (LOCAL_FAST's) switched to ``provider`` (``echo``, say), and the
    embedded model's ``quantization`` line dropped, since config loading refuses
    a quantization for any other provider.  Comment lines are left as they are."""
    text = text.replace("    - provider: llama_cpp\n", f"    - provider: {provider}\n", 1)
    return re.sub(r"(?m)^      quantization: .*\n", "", text, count=1)
