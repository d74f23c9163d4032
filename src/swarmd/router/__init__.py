"""The tiered router: config-driven cascade over LOCAL_FAST → LOCAL_QUALITY →
API_FALLBACK with a quality gate, escalation and cool-downs.

Typical use::

    from swarmd.config import load_config
    from swarmd.costs import Ledger
    from swarmd.router import Router
    router = Router(load_config(), Ledger("memory.db"))
    result = router.route("classify", "fix crash on empty file", labels=("feat", "fix"))
    result.answer, result.confidence, result.tier, result.status

Where each responsibility lives:

* :mod:`swarmd.router.router` — :class:`Router`: the cascade, escalation,
  one ledger row per call;
* :mod:`swarmd.router.providers` — the model backends behind one interface
  (``llama_cpp``, ``ollama``, ``anthropic``, ``echo``);
* :mod:`swarmd.router.quality` — the quality gate (confidence of one answer);
* :mod:`swarmd.router.calibration` — fitting and applying a classify
  action's label calibration;
* :mod:`swarmd.router.prompts` — few-shot prompts from the config's templates;
* :mod:`swarmd.router.tiers` — availability: an unreachable backend cools down.

What the router learns from is :mod:`swarmd.memory` (learned gate, answer
cache, retrieved examples).

What a call costs is :mod:`swarmd.costs`' business: the router writes each
call to a :class:`~swarmd.costs.Ledger` and, given a
:class:`~swarmd.costs.Budget`, reserves a paid call's worst case before it
and settles it after (:meth:`Router._reserve`, :meth:`Router._settle` in
:mod:`swarmd.router.router`: the reservation must wrap the provider call, so
that step stays here).
"""

from swarmd.router.router import ACCEPTED, BUDGET, UNRESOLVED, Attempt, RequestError, RouteResult, Router

__all__ = ["ACCEPTED", "BUDGET", "UNRESOLVED", "Attempt", "RequestError", "RouteResult", "Router"]
