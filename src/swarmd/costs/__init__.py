"""Costs: everything about what a model call costs, was allowed to cost, and will cost.

:mod:`~swarmd.costs.pricing` (which model prices a tier; the one price formula),
:mod:`~swarmd.costs.ledger` (the cost ledger: one row per model call),
:mod:`~swarmd.costs.budgets` (daily / monthly / per-objective caps shared through Redis),
:mod:`~swarmd.costs.ledger_data` (ledger rows read back and summarised: the definitions every
report uses), :mod:`~swarmd.costs.report` and :mod:`~swarmd.costs.charts` (the cost report,
Markdown and PNG), :mod:`~swarmd.costs.profile` (workload profiles),
:mod:`~swarmd.costs.simulate` (expected cost over N days), :mod:`~swarmd.costs.analysis`
(swarmd versus the API tier alone). The command line is :mod:`swarmd.cli.costs`.

Prices always come from the config in USD per **million** tokens:
``cost = (tokens_in × price_in + tokens_out × price_out) / 1e6``.
"""

from swarmd.costs.budgets import Budget, Reservation
from swarmd.costs.ledger import Ledger, LedgerRow
from swarmd.costs.pricing import api_model, price_usd, tier_model

__all__ = ["Budget", "Ledger", "LedgerRow", "Reservation", "api_model", "price_usd", "tier_model"]
