"""Shared helpers for the cost tests: a config pointing at loopback fakes, and
a ledger of realistic cascades written with :class:`swarmd.costs.Ledger`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from swarmd.config import Config
from swarmd.costs import Ledger, LedgerRow

ROOT = Path(__file__).resolve().parents[2]
from tests.fakes.config import API_PRICES, make_config  # noqa: F401  (the cost tests import both from here)


# Action → (tokens_in, tokens_out, escalation probability per tier of its chain).
CASCADES = {
    "classify": (350, 1, {"LOCAL_FAST": 0.6, "LOCAL_QUALITY": 0.3, "API_FALLBACK": 0.02}),
    "summarize": (900, 60, {"LOCAL_QUALITY": 0.25, "API_FALLBACK": 0.0}),
    "reason": (300, 400, {"API_FALLBACK": 0.05}),
}


def build_ledger(path: Path, config: Config, requests: int = 300, seed: int = 7, start_ts: float = 1_700_000_000.0,
                 days: float = 3.0, error_share: float = 0.05) -> list[LedgerRow]:
    """Write ``requests`` routed requests as ledger rows, the way the router
    writes them: one row per tier visited (accepted / escalated / rejected),
    an ``error`` row now and then (0 tokens, the request moves on), costs at
    the config's prices per million tokens, computed here rather than by
    swarmd's pricing (which the cost tests check against these rows).
    Returns the rows written."""
    rng = random.Random(seed)
    ledger = Ledger(path)
    rows = []
    actions = list(CASCADES)
    for i in range(requests):
        action = rng.choices(actions, weights=[6, 3, 1])[0]
        tin, tout, escalation = CASCADES[action]
        chain = config.chain_from(action)
        ts = start_ts + days * 86400 * i / requests
        for k, tier in enumerate(chain):
            model = config.tiers[tier][0]
            last = k == len(chain) - 1
            if not last and rng.random() < error_share:
                row = LedgerRow(action, tier, model.provider, model.model, 0, 0, 0.0, 5.0, None, "error",
                                objective_id=f"o{i}", error="HTTP 500", ts=ts)
            else:
                n_in, n_out = tin + rng.randint(-40, 40), max(1, tout + rng.randint(-tout // 4, tout // 4))
                goes_on = rng.random() < escalation[tier]
                outcome = ("rejected" if last else "escalated") if goes_on else "accepted"
                cost = (n_in * model.price_per_mtok_in + n_out * model.price_per_mtok_out) / 1e6   # by hand
                row = LedgerRow(action, tier, model.provider, model.model, n_in, n_out, cost,
                                rng.uniform(20, 900), rng.uniform(0.1, 0.99), outcome, objective_id=f"o{i}", ts=ts)
            ledger.record(row)
            rows.append(row)
            ts += 0.5
            if row.outcome in ("accepted", "rejected"):
                break
    ledger.close()
    return rows


@pytest.fixture
def config() -> Config:
    return make_config()
