"""The tiered router: config-driven cascade over LOCAL_FAST → LOCAL_QUALITY →
API_FALLBACK with a quality gate, escalation, cool-downs and a cost ledger.

Typical use::

    from swarmd.config import load_config
    from swarmd.router import Router, Ledger
    router = Router(load_config(), Ledger("memory.db"))
    result = router.route("classify", "fix crash on empty file", labels=("feat", "fix"))
    result.answer, result.confidence, result.tier, result.status
"""

from swarmd.router.budgets import Budget, Reservation
from swarmd.router.ledger import Ledger, LedgerRow
from swarmd.router.router import ACCEPTED, BUDGET, UNRESOLVED, Attempt, RequestError, RouteResult, Router

__all__ = ["ACCEPTED", "BUDGET", "UNRESOLVED", "Attempt", "Budget", "Ledger", "LedgerRow", "RequestError", "Reservation",
           "RouteResult", "Router"]
