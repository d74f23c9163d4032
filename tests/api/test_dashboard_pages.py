"""The dashboard's costs chart and traces pages, over real HTTP against a running swarmd.

The chart's data (:func:`swarmd.costs.report.spend_over_time`) are checked against
sums worked out by hand; the served SVG must name each tier that spent and the
window's total; the traces pages list a trace written to the daemon's store and
show its steps, and an unknown trace is 404.
"""

from __future__ import annotations

import time

import pytest

from swarmd.agent.traces import TraceStore, learn
from swarmd.costs.ledger import Ledger, LedgerRow
from swarmd.costs.report import spend_over_time
from tests.api.conftest import PLANTED_KEY
from tests.api.html import table_rows
from tests.wait import LONG_S, wait_until


def _row(ts: float, tier: str, usd: float) -> dict:
    return {"ts": ts, "tier": tier, "cost_usd": usd}


def test_spend_over_time_buckets_by_tier():
    # window [1000, 1400): 4 buckets of 100 s; rows at the edges and outside
    rows = [_row(999.9, "API_FALLBACK", 5.0), _row(1000.0, "LOCAL_FAST", 0.0), _row(1000.0, "API_FALLBACK", 0.25),
            _row(1099.99, "API_FALLBACK", 0.5), _row(1100.0, "API_FALLBACK", 1.0), _row(1350.0, "LOCAL_QUALITY", 0.0),
            _row(1399.0, "API_FALLBACK", 2.0), _row(1400.0, "API_FALLBACK", 9.0)]
    series = spend_over_time(rows, 1000.0, 1400.0, buckets=4)
    assert series["bucket_s"] == 100.0 and series["starts"] == [1000.0, 1100.0, 1200.0, 1300.0]
    assert series["tiers"] == {"LOCAL_FAST": [0.0, 0.0, 0.0, 0.0], "API_FALLBACK": [0.75, 1.0, 0.0, 2.0],
                               "LOCAL_QUALITY": [0.0, 0.0, 0.0, 0.0]}
    assert series["calls"] == {"LOCAL_FAST": [1, 0, 0, 0], "API_FALLBACK": [2, 1, 0, 1], "LOCAL_QUALITY": [0, 0, 0, 1]}
    with pytest.raises(ValueError, match="empty window"):
        spend_over_time(rows, 1400.0, 1400.0)


def test_costs_chart_and_traces_pages(swarm):
    now = time.time()
    ledger = Ledger(swarm.data / "memory.db")
    for tier, usd, age_s in (("API_FALLBACK", 0.0125, 600), ("API_FALLBACK", 0.0025, 7200), ("LOCAL_FAST", 0.0, 60)):
        ledger.record(LedgerRow(action="classify", tier=tier, provider="x", model="m", tokens_in=1, tokens_out=1,
                                cost_usd=usd, latency_ms=1.0, confidence=0.9, outcome="accepted", ts=now - age_s))
    ledger.close()
    traces = TraceStore(swarm.data / "memory.db")
    step = {"n": 1, "tool": "shell", "args": {"command": "grep -ro TODO src | wc -l"}, "ran": True, "exit_code": 0,
            "output": "7\n", "decision": "allow", "rule": "r", "reason": "x", "error": None}
    [(tid, version)] = traces.apply({"learn": learn("Count the 'TODO' markers in src/", [step], "7 markers")
                                     .model_dump(by_alias=True)}, 0.8)
    traces.close()
    with swarm.client() as c:
        page = c.get("/costs", params={"since": "1d"})
        assert page.status_code == 200 and 'src="/costs/spend.svg?since=1d"' in page.text
        svg = c.get("/costs/spend.svg", params={"since": "1d"})
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
        assert "API_FALLBACK" in svg.text and "LOCAL_FAST" in svg.text and "$0.0150" in svg.text
        assert "$0.0125" in c.get("/costs/spend.svg", params={"since": "1h"}).text   # the 2 h old call left out
        assert c.get("/costs/spend.svg", params={"since": "yesterday-ish"}).status_code == 422
        listing = c.get("/traces")
        assert listing.status_code == 200 and f'href="/traces/{tid}?version={version}"' in listing.text
        assert "Count the &#39;TODO&#39; markers in src/" in listing.text and ">active<" in listing.text
        detail = c.get(f"/traces/{tid}")
        assert detail.status_code == 200 and "grep -ro {{quoted1}} {{path1}} | wc -l" in detail.text   # its slots
        assert "output_matches" in detail.text and "<code>{{out1}} markers</code>" in detail.text
        assert c.get("/traces/nosuch").status_code == 404
    with swarm.client(None) as c:
        assert c.get("/costs/spend.svg", follow_redirects=False).status_code in (303, 401)   # no session, no token
        assert c.get("/traces", follow_redirects=False).status_code in (303, 401)


def test_objective_page_shows_skipped_tiers_and_overview_shows_tier_health(swarm):
    """A tag objective the echo model cannot answer escalates past LOCAL_FAST: Ollama (a closed
    port) and the API (its base URL a closed port) are skipped as unreachable.  The one-objective
    page lists those skips as GET /api/v1/objectives/{id} has them; the overview shows each
    tier's health as GET /api/v1/status has it."""
    with swarm.client() as c:
        assert c.post("/api/v1/objectives", json={"id": "esc1", "action": "tag", "labels": ["feat", "fix"],
                                                  "input": "names no tag"}).status_code == 202
        record = wait_until(lambda: (r := c.get("/api/v1/objectives/esc1").json()).get("state")
                            in ("done", "unresolved", "failed") and r, LONG_S, "esc1 final")
        assert {s["tier"] for s in record["skipped"]} == {"LOCAL_QUALITY", "API_FALLBACK"}
        assert record["steps"] == []                              # a label objective: no tool action
        page = c.get("/objectives/esc1")
        assert page.status_code == 200
        shown = table_rows(page.text, "skipped")
        assert [(r["tier"], r["model"], r["why"]) for r in shown] == \
            [(s["tier"], s["model"], s["reason_kind"]) for s in record["skipped"]]
        assert all(r["detail"] for r in shown) and "127.0.0.1:9" in shown[0]["detail"]
        assert table_rows(page.text, "steps") == []
        assert record["trace_used"] is None and '<p id="trace-used">none followed</p>' in page.text

        tiers = c.get("/api/v1/status").json()["tiers"]
        assert {t["tier"] for t in tiers} == {"LOCAL_FAST", "LOCAL_QUALITY", "API_FALLBACK"}
        health = table_rows(c.get("/").text, "tier-health")
        assert [(r["tier"], r["model"], r["up"]) for r in health] == \
            [(t["tier"], t["model"], "up" if t["up"] else "down") for t in tiers]
        by_tier = {r["tier"]: r for r in health}
        assert by_tier["LOCAL_FAST"]["up"] == "up"               # echo: in-process, nothing to reach
        assert by_tier["LOCAL_QUALITY"]["up"] == "down" and "127.0.0.1:9" in by_tier["LOCAL_QUALITY"]["reachable"]
        assert by_tier["API_FALLBACK"]["API key"] == "yes"        # the planted key, never its value
        assert PLANTED_KEY not in c.get("/").text
