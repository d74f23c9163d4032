"""The tiered router: config-driven cascade over LOCAL_FAST → LOCAL_QUALITY →
API_FALLBACK with a quality gate, escalation and cool-downs.

Typical use::

    from swarmd.config import load_config
    from swarmd.costs import Ledger
    from swarmd.router import Router
    router = Router(load_config(), Ledger("memory.db"))
    result = router.route("classify", "fix crash on empty file", labels=("feat", "fix"))
    result.answer, result.confidence, result.tier, result.status

What a call costs is :mod:`swarmd.costs`' business: the router writes each
call to a :class:`~swarmd.costs.Ledger` and, given a
:class:`~swarmd.costs.Budget`, reserves a paid call's worst case before it
and settles it after (:meth:`Router._reserve`, :meth:`Router._settle` in
:mod:`swarmd.router.router`: the reservation must wrap the provider call, so
that step stays here).
"""

from swarmd.router.router import ACCEPTED, BUDGET, UNRESOLVED, Attempt, RequestError, RouteResult, Router

__all__ = ["ACCEPTED", "BUDGET", "UNRESOLVED", "Attempt", "RequestError", "RouteResult", "Router"]
