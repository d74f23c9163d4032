"""Expected cost of a workload profile over N days: deterministic (an expected value, not a draw).

Per action, ``objectives × share`` objectives make :meth:`ActionProfile.visits` calls per
objective at each tier, priced at the tier's first model with the profile's mean tokens:

* **hybrid cost**: Σ calls × (tokens_in × price_in + tokens_out × price_out) / 1e6
  (``MEMORY`` and trace replays cost 0);
* **pure-API cost**: each *answered* objective as one API call with the tokens of the tier
  its cascade ends at; unresolved ones apart (``unresolved_api_cost_usd``, never saved);
* **savings** = pure-API − hybrid (and as a percentage of pure-API).

Budgets are not simulated: a day above ``budgets.daily_usd`` is flagged (``exceeds_daily_cap``).
"""

from __future__ import annotations

from swarmd.config import Config
from swarmd.costs.pricing import UNPRICED_TIERS, api_model, price_usd, tier_cost_usd, tier_is_free
from swarmd.costs.profile import Profile, check_against

METHOD = "expected values (deterministic; no random sampling)"


def simulate(profile: Profile, config: Config, days: float) -> dict:
    """Expected spend of ``profile`` over ``days`` days at ``config``'s prices.

    Returns ``{"profile", "method", "days", "objectives_per_day",
    "objectives", "answered", "calls", "pure_api_cost_usd", "hybrid_cost_usd",
    "savings_usd", "savings_pct", "unresolved", "unresolved_api_cost_usd",
    "per_day": {"hybrid_cost_usd",
    "pure_api_cost_usd"}, "daily_cap_usd", "exceeds_daily_cap", "api_model",
    "by_tier": {tier: {"calls", "share_of_calls", "answered", "share_answered",
    "tokens_in", "tokens_out", "cost_usd"}}, "by_action": {action:
    {"objectives", "answered", "calls", "paid_calls", "hybrid_cost_usd",
    "pure_api_cost_usd", "savings_usd", "savings_pct", "unresolved",
    "unresolved_api_cost_usd", "tiers": {tier: {"calls",
    "cost_usd"}}}}, "top_actions": [[action, hybrid_cost_usd], ...]}`` (money
    in USD, counts as expected values, ``savings_pct`` in percent).  Raises
    :class:`swarmd.costs.profile.ProfileError` for a tier the config lacks,
    ``ValueError`` for ``days <= 0``.
    """
    if days <= 0:
        raise ValueError(f"days must be > 0, found {days!r}")
    check_against(profile, config)
    api = api_model(config)
    objectives = profile.objectives_per_day * days
    by_tier: dict[str, dict] = {}
    by_action: dict[str, dict] = {}
    for name, action in profile.actions.items():
        n = objectives * action.share
        row = {"objectives": n, "calls": 0.0, "paid_calls": 0.0, "hybrid_cost_usd": 0.0, "pure_api_cost_usd": 0.0,
               "answered": 0.0, "unresolved": 0.0, "unresolved_api_cost_usd": 0.0, "tiers": {}}
        last = len(action.steps) - 1
        for i, (step, visits, ends) in enumerate(zip(action.steps, action.visits(), action.ends())):
            calls = n * visits
            cost = tier_cost_usd(config, step.tier, calls * step.tokens_in, calls * step.tokens_out)
            row["calls"] += calls
            row["paid_calls"] += 0.0 if tier_is_free(config, step.tier) else calls
            row["hybrid_cost_usd"] += cost
            unresolved = calls * step.escalation if i == last else 0.0
            answered = n * ends - unresolved
            row["answered"] += answered
            row["pure_api_cost_usd"] += price_usd(api, answered * step.tokens_in, answered * step.tokens_out)
            if i == last:
                row["unresolved"] = unresolved
                row["unresolved_api_cost_usd"] = price_usd(api, unresolved * step.tokens_in,
                                                           unresolved * step.tokens_out)
            row["tiers"][step.tier] = {"calls": calls, "cost_usd": cost}
            t = by_tier.setdefault(step.tier, {"calls": 0.0, "answered": 0.0, "tokens_in": 0.0, "tokens_out": 0.0,
                                               "cost_usd": 0.0})
            t["calls"] += calls
            t["answered"] += n * ends
            t["tokens_in"] += calls * step.tokens_in
            t["tokens_out"] += calls * step.tokens_out
            t["cost_usd"] += cost
        row["savings_usd"] = row["pure_api_cost_usd"] - row["hybrid_cost_usd"]
        row["savings_pct"] = _pct(row["savings_usd"], row["pure_api_cost_usd"])
        by_action[name] = row
    order = {t: i for i, t in enumerate((*UNPRICED_TIERS, *config.escalation.chain))}
    by_tier = dict(sorted(by_tier.items(), key=lambda kv: order.get(kv[0], len(order))))
    calls = sum(t["calls"] for t in by_tier.values())
    answered = sum(t["answered"] for t in by_tier.values())
    for t in by_tier.values():
        t["share_of_calls"] = t["calls"] / calls if calls else 0.0
        t["share_answered"] = t["answered"] / answered if answered else 0.0
    hybrid = sum(a["hybrid_cost_usd"] for a in by_action.values())
    pure = sum(a["pure_api_cost_usd"] for a in by_action.values())
    cap = config.budgets.daily_usd
    return {
        "profile": profile.name, "method": METHOD, "days": days,
        "objectives_per_day": profile.objectives_per_day, "objectives": objectives, "calls": calls,
        "pure_api_cost_usd": pure, "hybrid_cost_usd": hybrid, "savings_usd": pure - hybrid,
        "savings_pct": _pct(pure - hybrid, pure),
        "answered": sum(a["answered"] for a in by_action.values()),
        "unresolved": sum(a["unresolved"] for a in by_action.values()),
        "unresolved_api_cost_usd": sum(a["unresolved_api_cost_usd"] for a in by_action.values()),
        "per_day": {"hybrid_cost_usd": hybrid / days, "pure_api_cost_usd": pure / days},
        "daily_cap_usd": cap, "exceeds_daily_cap": cap is not None and hybrid / days > cap,
        "api_model": {"model": api.model, "price_per_mtok_in": api.price_per_mtok_in,
                      "price_per_mtok_out": api.price_per_mtok_out},
        "by_tier": by_tier, "by_action": by_action,
        "top_actions": sorted(([a, r["hybrid_cost_usd"]] for a, r in by_action.items()), key=lambda x: -x[1])[:5],
    }


def _pct(part: float, whole: float) -> float:
    return 100 * part / whole if whole else 0.0
