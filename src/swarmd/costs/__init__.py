"""Cost accounting: reading the ledger, pricing it, and predicting workloads.

* :mod:`swarmd.costs.ledger_data` — ledger rows from ``memory.db`` or a JSONL
  export, and their summary (spend, calls, escalation, pure-API equivalent).
* :mod:`swarmd.costs.profile` — workload profiles (built-in, YAML, or measured
  from a ledger).
* :mod:`swarmd.costs.simulate` — expected cost of a profile over N days.
* :mod:`swarmd.costs.cli` — ``cost_analysis.py`` / ``swarmctl cost-analysis``
  and ``swarmctl report``.

Prices always come from the config (``llm_config.yaml``) in USD per
**million** tokens: ``cost = (tokens_in × price_in + tokens_out × price_out) / 1e6``.
"""

from swarmd.costs.pricing import api_model, price_usd, tier_model

__all__ = ["api_model", "price_usd", "tier_model"]
