"""Charts for cost reports and cost analyses (matplotlib, Agg backend: no display needed).

The PNG charts have two panels: cost by action, actual (or hybrid) next to the
answered work on the API tier only, in USD; and calls by tier.  Titles
(:func:`report_title`, :func:`analysis_title`) give the savings over the
answered objectives and the unresolved ones apart.  :func:`spend_svg` draws the
dashboard's spend by tier over time (stacked bars, SVG text, served by the daemon:
nothing from a CDN).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TIER_COLOURS = {"LOCAL_FAST": "#4c9f70", "LOCAL_QUALITY": "#3b7dd8", "API_FALLBACK": "#d8653b"}


def _two_panels(title: str, by_action: dict[str, tuple[float, float]], by_tier: dict[str, float],
                path: str | Path, hybrid_label: str) -> Path:
    """``by_action``: action → (hybrid USD, API-only USD); ``by_tier``: tier → calls."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    names = sorted(by_action, key=lambda a: -by_action[a][1])[:12]
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], [by_action[a][0] for a in names], width=0.4, label=hybrid_label,
             color="#4c9f70")
    left.bar([x + 0.2 for x in xs], [by_action[a][1] for a in names], width=0.4, label="API tier only",
             color="#d8653b")
    left.set_xticks(list(xs), names, rotation=30, ha="right")
    left.set_ylabel("USD")
    left.set_title("cost by action")
    left.legend()
    tiers = list(by_tier)
    right.bar(tiers, [by_tier[t] for t in tiers], color=[TIER_COLOURS.get(t, "#888888") for t in tiers])
    right.set_ylabel("calls")
    right.set_title("calls by tier")
    right.tick_params(axis="x", rotation=15)
    fig.suptitle(title.replace("$", r"\$"))   # a literal dollar, not matplotlib mathtext
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def report_title(report: dict) -> str:
    """The report chart's title: spend vs the answered requests' API-only cost,
    the savings on them, and the unresolved requests apart (not saved)."""
    return (f"swarmd spend: ${report['cost_usd']:.4f} vs ${report['pure_api_cost_usd']:.4f} API-only for "
            f"{report['answered']} answered; saved ${report['savings_usd']:.4f} ({report['savings_pct']:.1f}%)\n"
            f"{report['unresolved']} unresolved (API-only ${report['unresolved_api_cost_usd']:.4f}, not saved)")


def analysis_title(result: dict) -> str:
    """The analysis chart's title (the same split as :func:`report_title`)."""
    return (f"{result['profile']}: {result['days']:g} days, {result['objectives']:,.0f} objectives, "
            f"{result['answered']:,.0f} answered; hybrid ${result['hybrid_cost_usd']:,.2f} vs API-only "
            f"${result['pure_api_cost_usd']:,.2f} ({result['savings_pct']:.1f}% saved)\n"
            f"{result['unresolved']:,.0f} unresolved (API-only ${result['unresolved_api_cost_usd']:,.2f}, not saved)")


def plot_report(report: dict, path: str | Path) -> Path:
    """Chart of a :func:`swarmd.costs.report.build_report` dict; returns ``path``."""
    return _two_panels(report_title(report),
                       {a: (v["cost_usd"], v["pure_api_cost_usd"]) for a, v in report["by_action"].items()},
                       {t: v["calls"] for t, v in report["by_tier"].items()}, path, "swarmd (actual)")


def plot_analysis(result: dict, path: str | Path) -> Path:
    """Chart of a :func:`swarmd.costs.simulate.simulate` result; returns ``path``."""
    return _two_panels(analysis_title(result),
                       {a: (v["hybrid_cost_usd"], v["pure_api_cost_usd"]) for a, v in result["by_action"].items()},
                       {t: v["calls"] for t, v in result["by_tier"].items()}, path, "swarmd (hybrid)")


def spend_svg(series: dict) -> str:
    """An SVG document (text) of spend by tier over time: one stacked bar per bucket of
    ``series`` (:func:`swarmd.costs.report.spend_over_time`), USD on the y axis, bucket
    start times (local clock) on the x axis, one colour per tier (:data:`TIER_COLOURS`).
    With no spend in the window the bars are empty and the title says so."""
    starts, tiers = series["starts"], series["tiers"]
    hours = series["bucket_s"] * len(starts) / 3600
    fmt = "%H:%M" if hours <= 24 else "%m-%d %H:%M"
    labels = [time.strftime(fmt, time.localtime(t)) for t in starts]
    total = sum(sum(v) for v in tiers.values())
    with plt.rc_context({"svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(10, 3.2))
        bottom = [0.0] * len(starts)
        for tier, usd in tiers.items():
            ax.bar(range(len(starts)), usd, bottom=bottom, width=0.85, label=tier,
                   color=TIER_COLOURS.get(tier, "#888888"))
            bottom = [b + u for b, u in zip(bottom, usd)]
        step = max(1, len(starts) // 8)
        ax.set_xticks(list(range(0, len(starts), step)), labels[::step])
        ax.set_ylabel("USD")
        ax.set_title(f"spend by tier over the last {hours:g} h: ${total:.4f}".replace("$", r"\$")
                     + ("" if tiers else " (no calls)"))
        if tiers:
            ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg")
        plt.close(fig)
    return out.getvalue()
