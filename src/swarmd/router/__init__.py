"""The tiered router: config-driven cascade over LOCAL_FAST → LOCAL_QUALITY → API_FALLBACK.

Typical use::

    router = Router(load_config(), Ledger("memory.db"))
    result = router.route("classify", "fix crash on empty file", labels=("feat", "fix"))
    result.answer, result.confidence, result.tier, result.status

Modules: :mod:`~swarmd.router.router` (:class:`Router`: the cascade, escalation, one ledger
row per call), :mod:`~swarmd.router.providers` (``llama_cpp``, ``ollama``, ``anthropic``,
``echo`` behind one interface), :mod:`~swarmd.router.quality` (the quality gate),
:mod:`~swarmd.router.calibration` (label calibration), :mod:`~swarmd.router.prompts`
(few-shot prompts), :mod:`~swarmd.router.tiers` (availability and cool-downs).  The router
reads :mod:`swarmd.memory` (learned gate, answer cache, retrieved examples) and uses
:mod:`swarmd.costs` (ledger; a budget's reservation wraps each paid call).
"""

from swarmd.router.router import ACCEPTED, BUDGET, STOPPED, UNRESOLVED, Attempt, RequestError, RouteResult, Router

__all__ = ["ACCEPTED", "BUDGET", "STOPPED", "UNRESOLVED", "Attempt", "RequestError", "RouteResult", "Router"]
