"""Which model prices a tier, and the one price formula.

A tier is priced at its **first** model (the one that answers whenever it is
available).  The "pure API" comparison prices tokens at the first model of
``API_FALLBACK`` (or, in a config without that tier, of the last tier of the
escalation chain).  The ledger's tiers outside the config
(:data:`UNPRICED_TIERS`: the answer cache and trace replays) call no model
and cost 0 (:func:`tier_cost_usd`).
"""

from __future__ import annotations

from swarmd.config import Config, ModelConfig
from swarmd.costs.ledger import MEMORY_TIER, TRACE_TIER

API_TIER = "API_FALLBACK"
#: ledger tiers that are no model tier of the config: no model is called, so no price applies (USD 0)
UNPRICED_TIERS = (MEMORY_TIER, TRACE_TIER)


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


def tier_cost_usd(config: Config, tier: str, tokens_in: float, tokens_out: float) -> float:
    """USD of tokens at ``tier``'s first model; 0 at :data:`UNPRICED_TIERS`
    unless the config defines a tier of that name.  Raises ``KeyError`` for
    any other tier the config lacks."""
    if tier in UNPRICED_TIERS and tier not in config.tiers:
        return 0.0
    return price_usd(tier_model(config, tier), tokens_in, tokens_out)


def tier_is_free(config: Config, tier: str) -> bool:
    """True when calls at ``tier`` cost nothing (an unpriced tier, or a free first model)."""
    return (tier in UNPRICED_TIERS and tier not in config.tiers) or tier_model(config, tier).is_free
