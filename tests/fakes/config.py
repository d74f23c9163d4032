"""A test configuration: the shipped llm_config.yaml with its tiers pointed at
the loopback fakes (both local tiers on fake Ollama hosts, the API tier on a
fake Anthropic URL).  Shared by the router and the cost tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from swarmd.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[2]
API_PRICES = (3.0, 15.0)      # USD per million tokens in / out in the test config


def make_config(fast_url: str = "http://127.0.0.1:9", quality_url: str = "http://127.0.0.1:9",
                api_url: str = "http://127.0.0.1:9", budgets: dict | None = None, **sections) -> Config:
    """The shipped llm_config.yaml with both local tiers on (fake) Ollama hosts,
    the API tier on a (fake) Anthropic URL at $3/$15 per MTok, and ``budgets``."""
    data = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())
    common = {"context_window": 8192, "timeout_s": 2, "max_output_tokens": 64}
    data["tiers"] = {
        "LOCAL_FAST": [{"provider": "ollama", "model": "small", "hosts": [fast_url],
                        "price_per_mtok_in": 0, "price_per_mtok_out": 0, **common}],
        "LOCAL_QUALITY": [{"provider": "ollama", "model": "llama3.1:8b", "hosts": [quality_url],
                           "price_per_mtok_in": 0, "price_per_mtok_out": 0, **common}],
        "API_FALLBACK": [{"provider": "anthropic", "model": "claude-sonnet-5-5", "base_url": api_url,
                          "price_per_mtok_in": API_PRICES[0], "price_per_mtok_out": API_PRICES[1],
                          "prior_confidence": 0.9, **common}],
    }
    data["budgets"] = budgets if budgets is not None else {"daily_usd": None, "monthly_usd": None}
    # the shipped policy, by absolute path: the config is parsed from text (no file to sit beside)
    data.setdefault("governor", {})["policy"] = str(ROOT / "src" / "swarmd" / "policy.yaml")
    for key, value in sections.items():
        data[key] = value
    return parse_config(yaml.safe_dump(data), "test", env={"ANTHROPIC_API_KEY": "sk-ant-test-key"})
