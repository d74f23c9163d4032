"""Cost analysis: a workload's cost with swarmd versus the API tier alone.

:func:`analyse` simulates a workload profile, or measures one from a ledger
and checks that simulating it at the ledger's volume reproduces the ledger's
spend (within :data:`VALIDITY_TOLERANCE`).  The command line over it is
``swarmctl cost-analysis`` (``cost_analysis.py``), in :mod:`swarmd.cli.costs`.
Deterministic: expected values, no random sampling.
"""

from __future__ import annotations

from pathlib import Path

from swarmd.config import Config
from swarmd.costs.ledger_data import LedgerReadError, read_rows, summarize
from swarmd.costs.pricing import tier_cost_usd
from swarmd.costs.profile import Profile, from_ledger, ledger_span_days, load_profile
from swarmd.costs.simulate import simulate
from swarmd.costs.report import parse_since

#: The validity check: simulating the measured profile at the ledger's volume
#: must reproduce the ledger's hybrid cost within this relative error.
VALIDITY_TOLERANCE = 0.05


def analyse(config: Config, *, profile: str | None = None, from_ledger_path: str | None = None,
            days: float | None = None, iterations_per_day: float | None = None, since: str | None = None,
            top: int = 5) -> tuple[dict, Profile]:
    """Run one analysis; returns (the ``--json`` document, the profile used).

    Exactly one mode: ``from_ledger_path`` given (measure the profile from that
    ledger: ``memory.db`` or a JSONL export; ``since`` limits its rows), else
    simulate ``profile`` (a built-in name or a YAML file; default ``medium``).
    ``days``: days to cost (default 30, or the ledger's span);
    ``iterations_per_day``: objectives per day, scaling the profile's volume;
    ``top``: entries of ``top_actions``.  Prices (USD per million tokens) come
    from ``config``.  Raises ``ValueError`` (incl.
    :class:`~swarmd.costs.profile.ProfileError` and
    :class:`~swarmd.costs.ledger_data.LedgerReadError`) for bad input.
    """
    if days is not None and days <= 0:
        raise ValueError(f"--days must be > 0, found {days:g}")
    if iterations_per_day is not None and iterations_per_day <= 0:
        raise ValueError(f"--iterations-per-day must be > 0, found {iterations_per_day:g}")
    if top < 1:
        raise ValueError(f"--top must be >= 1, found {top}")
    if from_ledger_path is None:
        if since is not None:
            raise ValueError("--since applies to --from-ledger only")
        used = load_profile(profile or "medium")
        if iterations_per_day is not None:
            used = used.scaled(iterations_per_day)
        result = simulate(used, config, days if days is not None else 30.0)
        result["sources"] = used.sources
    else:
        if profile is not None:
            raise ValueError("--profile applies to --simulate only (--from-ledger measures the profile)")
        since_ts = parse_since(since) if since else None
        rows = read_rows(from_ledger_path, since_ts)
        if not rows:
            raise LedgerReadError(f"{from_ledger_path}: no ledger rows" + (f" since {since}" if since_ts else ""))
        measured = from_ledger(rows, config, name=f"measured from {Path(from_ledger_path).name}")
        actual = summarize(rows, config)
        span = ledger_span_days(rows)
        at_volume = simulate(measured, config, span)
        repriced = sum(_reprice(r, config) for r in rows)
        error = abs(at_volume["hybrid_cost_usd"] - repriced) / repriced if repriced else \
            (0.0 if at_volume["hybrid_cost_usd"] == 0 else float("inf"))
        used = measured if iterations_per_day is None else measured.scaled(iterations_per_day)
        projected = days is not None or iterations_per_day is not None
        result = simulate(used, config, days if days is not None else span) if projected else at_volume
        result["ledger"] = {
            "path": str(from_ledger_path), "rows": len(rows), "span_days": span,
            "objectives": measured.extra["objectives"], "cost_usd": actual["cost_usd"],
            "cost_repriced_usd": repriced, "answered": actual["answered"],
            "pure_api_cost_usd": actual["pure_api_cost_usd"],
            "savings_usd": actual["savings_usd"], "savings_pct": actual["savings_pct"],
            "escalation_rate": actual["escalation_rate"], "unresolved": actual["unresolved"],
            "unresolved_api_cost_usd": actual["unresolved_api_cost_usd"],
            "by_tier": actual["by_tier"], "by_action": actual["by_action"],
        }
        result["validity"] = {
            "actual_hybrid_cost_usd": repriced, "simulated_hybrid_cost_usd": at_volume["hybrid_cost_usd"],
            "recorded_hybrid_cost_usd": actual["cost_usd"],
            "rel_error": error, "tolerance": VALIDITY_TOLERANCE, "ok": error <= VALIDITY_TOLERANCE,
            "what": "the measured profile simulated at the ledger's volume vs the ledger's calls priced at the "
                    "config's prices (recorded_hybrid_cost_usd: as priced when the calls were made; the two "
                    "differ only if prices changed since)",
        }
        result["measured_profile"] = measured.to_dict()
        result["sources"] = measured.sources
    result["top_actions"] = sorted(([a, r["hybrid_cost_usd"]] for a, r in result["by_action"].items()),
                                   key=lambda x: -x[1])[:top]
    result["config"] = config.source
    return result, used


def _reprice(row: dict, config: Config) -> float:
    """A ledger row's tokens at the current price of its tier's first model
    (0 at the answer cache and trace replays; the row's own cost when its
    tier is gone from the config)."""
    try:
        return tier_cost_usd(config, row["tier"], int(row["tokens_in"] or 0), int(row["tokens_out"] or 0))
    except KeyError:
        return float(row["cost_usd"] or 0.0)
