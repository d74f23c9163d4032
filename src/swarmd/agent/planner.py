"""The planner of ``agent`` objectives: the goal becomes a short list of steps.

:func:`make_plan` routes the objective's text through the ``plan`` action
(``actions.plan`` in the config: output ``json``, starting at the first tier
able to plan — LOCAL_QUALITY in the shipped config; the embedded Gemma 3
270M of LOCAL_FAST cannot plan).  The router escalates along the chain as for
any action.  When no tier of that chain gives a usable plan (every planner
unreachable, refused by a budget, or its reply not a list of steps) the
objective cannot be planned: the caller ends it ``unresolved`` with
:attr:`Plan.reason`, at once.  The steps go to the agent loop
(:func:`swarmd.agent.loop.run_agent`, ``start={"plan": ...}``), which
shows them to the model after the objective.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from swarmd.config import PLAN_ACTION
from swarmd.router import RequestError, Router
from swarmd.agent.loop import route_for, why_unanswered

#: most steps kept from a plan, and characters per step
MAX_STEPS, STEP_CHARS = 12, 200


@dataclass
class Plan:
    """A planner's result: ``steps`` (``None``: no plan, ``reason`` says
    why), the router's ``attempts`` (dicts with ``action`` = ``plan``, for
    the ledger), ``cost_usd``
    (USD) and ``escalations`` of the planning call, and its ``tier``/``model``."""

    steps: list[str] | None
    reason: str | None = None
    attempts: list[dict] = field(default_factory=list)
    cost_usd: float = 0.0
    escalations: int = 0
    tier: str | None = None
    model: str | None = None


def parse_plan(answer: str | None) -> tuple[list[str] | None, str | None]:
    """A planner reply as steps: a JSON list of strings (or of objects with a
    ``step``/``description``/``action`` text), or ``{"steps": [...]}``.
    Returns ``(steps, None)`` (at most :data:`MAX_STEPS`, each cut at
    :data:`STEP_CHARS`) or ``(None, why)``."""
    try:
        data = json.loads(answer or "")
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        data = data["steps"]
    if not isinstance(data, list) or not data:
        return None, "expected a non-empty JSON list of steps"
    steps = []
    for item in data:
        if isinstance(item, dict):
            item = next((item[k] for k in ("step", "description", "action") if isinstance(item.get(k), str)), None)
        if not isinstance(item, str) or not item.strip():
            return None, "every step must be a non-empty text"
        steps.append(" ".join(item.split())[:STEP_CHARS])
    return steps[:MAX_STEPS], None


def make_plan(objective: dict, router: Router) -> Plan:
    """Plan ``objective`` (an objective dict: ``id``, ``input``,
    ``max_cost_usd``, ``strategy``) with the router's ``plan`` action (see
    the module docstring), under the objective's routing strategy
    (``local_only``: local tiers only; ``api_only``: the API only;
    ``local_fallback``: the API first, local tiers when it did not answer;
    ``None``: the action's).  Never raises for model failures; a config
    without a ``plan`` action, or a strategy the action's chain cannot serve,
    gives a :class:`Plan` without steps and that reason."""
    if PLAN_ACTION not in router.config.actions:
        return Plan(None, "no tier able to plan: the config has no actions.plan")
    strategy = objective.get("strategy")
    try:
        routed = route_for(router, PLAN_ACTION, objective["input"], objective)
    except RequestError as exc:
        return Plan(None, f"no tier able to plan: {exc}")
    attempts = [{**a, "action": PLAN_ACTION} for a in routed.attempts_json()]
    out = Plan(None, None, attempts, routed.cost_usd, routed.escalations, routed.tier, routed.model)
    if routed.status != "accepted":
        tried = ", ".join(tier for tier, _ in router.config.plan(PLAN_ACTION, strategy))
        under = f" under strategy {strategy}" if strategy and strategy != "cascade" else ""
        out.reason = f"no tier able to plan (tried {tried}{under}): {why_unanswered(routed)}"
        return out
    out.steps, why = parse_plan(routed.answer)
    if out.steps is None:
        out.reason = f"no usable plan from {routed.tier}/{routed.model}: {why}"
    return out
