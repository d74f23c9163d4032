"""Which model prices a tier, and the one price formula.

A tier is priced at its **first** model (the one that answers whenever it is
available).  The "pure API" comparison prices tokens at the first model of
``API_FALLBACK`` (or, in a config without that tier, of the last tier of the
escalation chain).
"""

from __future__ import annotations

from swarmd.config import Config, ModelConfig

API_TIER = "API_FALLBACK"


def tier_model(config: Config, tier: str) -> ModelConfig:
    """The first model of ``tier``.  Raises ``KeyError`` for a tier the config lacks."""
    return config.tiers[tier][0]


def api_model(config: Config) -> ModelConfig:
    """The model a pure-API deployment would call: first model of
    ``API_FALLBACK``, else of the last tier in ``escalation.chain``."""
    tier = API_TIER if API_TIER in config.tiers else config.escalation.chain[-1]
    return tier_model(config, tier)


def price_usd(model: ModelConfig, tokens_in: float, tokens_out: float) -> float:
    """USD of ``tokens_in``/``tokens_out`` (may be fractional expected counts)
    at ``model``'s per-million-token prices: ``(in × p_in + out × p_out) / 1e6``."""
    return model.cost_usd(tokens_in, tokens_out)
