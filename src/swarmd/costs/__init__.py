"""Costs: everything about what a model call costs, was allowed to cost, and
will cost.

* :mod:`swarmd.costs.pricing` — which model prices a tier, and the one price
  formula.
* :mod:`swarmd.costs.ledger` — the cost ledger: :class:`LedgerRow` (one row
  per model call) and :class:`Ledger` (append and read, over a SQLite file
  opened by :mod:`swarmd.store`; the daemon writes its rows in
  :mod:`swarmd.store.objectives` in the same transaction as the attempts).
* :mod:`swarmd.costs.budgets` — daily / monthly / per-objective caps shared
  by every worker through Redis: :class:`Budget` reserves, settles, releases,
  paces.
* :mod:`swarmd.costs.ledger_data` — reading ledger rows back (store file,
  bare ledger or JSONL export) and their summary (spend, calls, escalation,
  pure-API equivalent): the definitions every report uses.
* :mod:`swarmd.costs.report` — the cost report of a time window (Markdown),
  with its PNG chart from :mod:`swarmd.costs.charts`.
* :mod:`swarmd.costs.profile` — workload profiles (built-in, YAML, or measured
  from a ledger).
* :mod:`swarmd.costs.simulate` — expected cost of a profile over N days.
* :mod:`swarmd.costs.analysis` — a workload's cost with swarmd versus the API
  tier alone, and the validity check against a ledger.  Its command line
  (``swarmctl cost-analysis``, ``cost_analysis.py``, ``swarmctl report``) is
  :mod:`swarmd.cli.costs`.

What stays outside, and why:

* the router's reservation around each paid call (:meth:`swarmd.router.Router._reserve`
  / ``_settle``): it must wrap the provider call inside the cascade, so it
  lives with the cascade and only calls :class:`Budget`;
* the daemon's schedule of the daily report and the Prometheus metrics
  (:mod:`swarmd.daemon.report_jobs`, :mod:`swarmd.daemon.metrics`): they are
  the daemon's jobs and serve more than costs (queue depths, objectives by
  state); they call :mod:`swarmd.costs.report` and :class:`Budget`.

Prices always come from the config (``llm_config.yaml``) in USD per
**million** tokens: ``cost = (tokens_in × price_in + tokens_out × price_out) / 1e6``.
"""

from swarmd.costs.budgets import Budget, Reservation
from swarmd.costs.ledger import Ledger, LedgerRow
from swarmd.costs.pricing import api_model, price_usd, tier_model

__all__ = ["Budget", "Ledger", "LedgerRow", "Reservation", "api_model", "price_usd", "tier_model"]
