"""Cost reports, ``swarmctl report``, the daemon's report jobs and metrics,
on ledgers and stores built by the tests."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
import yaml
from apscheduler.schedulers.background import BackgroundScheduler

from swarmd.cli import main as swarmctl
from swarmd.costs import Ledger, LedgerRow
from swarmd.costs.ledger_data import read_rows, summarize
from swarmd.costs.report import build_report, parse_since, render_markdown, summary_line, write_report
from swarmd.daemon.report_jobs import daily_report, register_report_jobs
from swarmd.objectives import Objective
from swarmd.daemon.store import Store
from tests.costs.conftest import API_PRICES, ROOT, build_ledger, make_config

NOW = time.time()


def api_usd(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * API_PRICES[0] + tokens_out * API_PRICES[1]) / 1e6


def small_ledger(path, config, now=NOW):
    """Two requests, every number known: classify escalated FAST -> QUALITY -> API
    (accepted), and yes_no accepted at FAST; plus a summarize that ended rejected."""
    ledger = Ledger(path)
    rows = [
        LedgerRow("classify", "LOCAL_FAST", "ollama", "small", 300, 1, 0.0, 40, 0.3, "escalated", "a", ts=now - 60),
        LedgerRow("classify", "LOCAL_QUALITY", "ollama", "llama3.1:8b", 280, 2, 0.0, 400, 0.5, "escalated", "a",
                  ts=now - 59),
        LedgerRow("classify", "API_FALLBACK", "anthropic", "claude-sonnet-5-5", 250, 2, api_usd(250, 2), 900, 0.9,
                  "accepted", "a", ts=now - 58),
        LedgerRow("yes_no", "LOCAL_FAST", "ollama", "small", 50, 1, 0.0, 30, 0.95, "accepted", "b", ts=now - 50),
        LedgerRow("summarize", "LOCAL_QUALITY", "ollama", "llama3.1:8b", 900, 60, 0.0, 800, 0.4, "escalated", "c",
                  ts=now - 40),
        LedgerRow("summarize", "API_FALLBACK", "anthropic", "claude-sonnet-5-5", 850, 70, api_usd(850, 70), 1200, 0.5,
                  "rejected", "c", ts=now - 39),
        LedgerRow("classify", "LOCAL_FAST", "ollama", "small", 300, 1, 0.0, 40, 0.9, "accepted", "old",
                  ts=now - 30 * 86400),                            # outside a 7-day window
    ]
    for row in rows:
        ledger.record(row)
    ledger.close()
    return rows


def test_report_numbers_on_a_known_ledger(tmp_path, config):
    db = tmp_path / "memory.db"
    small_ledger(db, config)
    report = build_report(db, config, parse_since("7d", NOW), NOW)
    assert report["calls"] == 6 and report["requests"] == 3
    spent = api_usd(250, 2) + api_usd(850, 70)
    assert report["cost_usd"] == pytest.approx(spent)
    # pure API: each answered request's final call's tokens at the API prices; the rejected summarize apart
    assert report["pure_api_cost_usd"] == pytest.approx(api_usd(250, 2) + api_usd(50, 1))
    assert report["unresolved_api_cost_usd"] == pytest.approx(api_usd(850, 70))
    assert report["savings_usd"] == pytest.approx(api_usd(50, 1) - api_usd(850, 70))
    assert report["all_calls_at_api_usd"] == pytest.approx(sum(api_usd(i, o) for i, o in
                                                               [(300, 1), (280, 2), (250, 2), (50, 1), (900, 60), (850, 70)]))
    assert report["by_tier"]["LOCAL_FAST"] == {"calls": 2, "tokens_in": 350, "tokens_out": 2, "cost_usd": 0.0}
    assert report["by_tier"]["API_FALLBACK"]["calls"] == 2
    assert report["by_model"]["API_FALLBACK/claude-sonnet-5-5"]["cost_usd"] == pytest.approx(spent)
    classify = report["by_action"]["classify"]
    assert classify["escalation_rate"] == pytest.approx(2 / 3) and classify["unresolved"] == 0
    assert report["by_action"]["summarize"]["unresolved"] == 1 and report["unresolved"] == 1
    assert report["escalation_rate"] == pytest.approx(3 / 6)
    assert report["objectives"] is None                         # a ledger written by the router alone


def test_savings_count_only_answered_requests(tmp_path, config):
    """Three requests, one answered: the savings compare the answered one's
    API-only cost with all the spend; the two unresolved ones are counted
    apart with what API-only answers would cost.  Every number by hand at
    the test config's $3 in / $15 out per million tokens."""
    db = tmp_path / "memory.db"
    ledger = Ledger(db)
    for row in [
        LedgerRow("classify", "LOCAL_FAST", "ollama", "small", 300, 1, 0.0, 40, 0.9, "accepted", "a", ts=NOW - 60),
        LedgerRow("classify", "LOCAL_FAST", "ollama", "small", 300, 1, 0.0, 40, 0.2, "escalated", "b", ts=NOW - 50),
        LedgerRow("classify", "LOCAL_QUALITY", "ollama", "llama3.1:8b", 280, 2, 0.0, 400, 0.3, "escalated", "b",
                  ts=NOW - 49),
        LedgerRow("classify", "API_FALLBACK", "anthropic", "claude-sonnet-5-5", 250, 2, 0.00078, 900, 0.4,
                  "rejected", "b", ts=NOW - 48),
        LedgerRow("summarize", "LOCAL_QUALITY", "ollama", "llama3.1:8b", 900, 60, 0.0, 800, 0.1, "rejected", "c",
                  ts=NOW - 40),
    ]:
        ledger.record(row)
    ledger.close()
    report = build_report(db, config, NOW - 3600, NOW)
    # answered: a, its final call 300 in / 1 out at the API: (300 × 3 + 1 × 15) / 1e6 = 0.000915
    # spent: b's API call, (250 × 3 + 2 × 15) / 1e6 = 0.00078; saved 0.000915 − 0.00078 = 0.000135
    # unresolved: b (0.00078 at the API) and c ((900 × 3 + 60 × 15) / 1e6 = 0.0036): 0.00438, not saved
    assert (report["requests"], report["answered"], report["unresolved"]) == (3, 1, 2)
    assert report["pure_api_cost_usd"] == pytest.approx(0.000915)
    assert report["cost_usd"] == pytest.approx(0.00078)
    assert report["savings_usd"] == pytest.approx(0.000135)
    assert report["savings_pct"] == pytest.approx(100 * 0.000135 / 0.000915)          # 14.75%
    assert report["unresolved_api_cost_usd"] == pytest.approx(0.00438)
    assert report["by_action"]["summarize"]["savings_usd"] == pytest.approx(0.0)
    assert report["by_action"]["summarize"]["unresolved_api_cost_usd"] == pytest.approx(0.0036)
    md = render_markdown(report)
    assert "| saved on answered requests (API-only − spent) | $0.0001 (14.8%) |" in md
    assert "| unresolved requests (nothing saved) | 2 |" in md
    assert "| unresolved requests, API tier only (still owed) | $0.0044 |" in md
    line = summary_line(report)
    assert "1 answered" in line and "saved $0.0001 (14.8%)" in line
    assert "unresolved 2 (API-only $0.0044, not saved)" in line
    from swarmd.costs.charts import report_title
    title = report_title(report)
    assert "(14.8%)" in title and "2 unresolved (API-only $0.0044, not saved)" in title


def test_report_counts_unresolved_budget_objectives_from_the_store(tmp_path, config):
    db = tmp_path / "memory.db"
    store = Store(db)
    for oid, state, reason in [("o1", "unresolved", "budget"), ("o2", "unresolved", "budget"), ("o3", "done", None),
                               ("o4", "unresolved", "no tier reached confidence 0.70")]:
        store.add_queued(Objective(id=oid, action="classify", input="x", labels=["a", "b"], submitted_at=NOW))
        attempt = {"tier": "LOCAL_FAST", "provider": "ollama", "model": "small", "tokens_in": 300, "tokens_out": 1,
                   "cost_usd": 0.0, "latency_ms": 40.0, "confidence": 0.3,
                   "outcome": "accepted" if state == "done" else "rejected", "error": None, "ts": NOW - 10}
        store.apply_event(f"e-{oid}", "finished", oid, {
            "state": state, "action": "classify", "ts": NOW - 5, "attempts": [attempt],
            "result": {"status": "accepted" if state == "done" else "unresolved", "reason": reason}})
    store.close()
    report = build_report(db, config, NOW - 3600, NOW)
    assert report["objectives"]["by_state"] == {"unresolved": 3, "done": 1}
    assert report["objectives"]["unresolved_by_reason"]["budget"] == 2
    assert report["calls"] == 4 and report["unresolved"] == 3     # ledger rows came from the finished events
    md = render_markdown(report)
    assert "| objectives unresolved: budget | 2 |" in md


def test_report_counts_objectives_by_routing_strategy(tmp_path, config):
    db = tmp_path / "memory.db"
    store = Store(db)
    for oid, strategy, state, cost in [("s1", "local_only", "done", 0.0), ("s2", "local_only", "unresolved", 0.0),
                                       ("s3", "api_only", "done", 0.0021), ("s4", None, "done", 0.0)]:
        store.add_queued(Objective(id=oid, action="classify", input="x", labels=["a", "b"], submitted_at=NOW,
                                   strategy=strategy))
        store.apply_event(f"e-{oid}", "finished", oid, {
            "state": state, "action": "classify", "ts": NOW - 5, "attempts": [],
            "result": {"cost_usd": cost, "reason": None if state == "done" else "no tier reached confidence 0.70"}})
    store.close()
    report = build_report(db, config, NOW - 3600, NOW)
    assert report["objectives"]["by_strategy"] == {   # no strategy stored: it ran cascade
        "local_only": {"objectives": 2, "done": 1, "unresolved": 1, "failed": 0, "cost_usd": 0.0},
        "api_only": {"objectives": 1, "done": 1, "unresolved": 0, "failed": 0, "cost_usd": 0.0021},
        "cascade": {"objectives": 1, "done": 1, "unresolved": 0, "failed": 0, "cost_usd": 0.0}}
    md = render_markdown(report)
    assert "| api_only | 1 | 1 | 0 | 0 | 0.002100 |" in md and "| local_only | 2 | 1 | 1 | 0 | 0.000000 |" in md


def test_written_report_markdown_png_and_summary_line(tmp_path, config):
    db = tmp_path / "memory.db"
    small_ledger(db, config)
    report = build_report(db, config, NOW - 7 * 86400, NOW)
    md, png = write_report(report, tmp_path / "reports", "7d")
    assert md.parent == png.parent == tmp_path / "reports" and md.name.endswith("-7d.md")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = md.read_text()
    for heading in ("# swarmd cost report", "## By tier", "## By model", "## By action", png.name):
        assert heading in text
    assert "| classify | 1 | 3 | 66.7% | 0 |" in text
    line = summary_line(report, md)
    assert "\n" not in line and "6 calls" in line and "3 requests" in line and str(md) in line


def test_swarmctl_report_since_7d(tmp_path, config, capsys):
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
    small_ledger(data / "memory.db", config)
    code = swarmctl(["--config", str(cfg), "--data-dir", str(data), "report", "--since", "7d", "--json",
                     "--export-jsonl", str(tmp_path / "rows.jsonl")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calls"] == 6 and len(out["files"]) == 2
    assert all((data / "reports").joinpath(p.split("/")[-1]).exists() for p in out["files"])
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 6
    jsonl = summarize(read_rows(tmp_path / "rows.jsonl"), config)
    spent = api_usd(250, 2) + api_usd(850, 70)                   # the two paid rows of small_ledger
    assert out["cost_usd"] == pytest.approx(spent) and jsonl["cost_usd"] == pytest.approx(spent)
    assert jsonl["requests"] == 3
    assert swarmctl(["--config", str(cfg), "--data-dir", str(data), "report", "--since", "31d", "--no-write"]) == 0
    printed = capsys.readouterr()
    assert "## By action" in printed.out and "7 calls" in printed.err
    assert swarmctl(["--config", str(cfg), "--data-dir", str(data), "report", "--since", "yesterday"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_daemon_report_jobs_and_metrics(tmp_path, redis_conn, log_lines):
    from swarmd.daemon.service import Daemon

    port = _free_port()
    config = make_config(budgets={"daily_usd": 5.0, "monthly_usd": 100.0},
                         reports={"daily_at": "23:55", "dir": "reports"}, metrics={"port": port, "refresh_s": 1})
    daemon = Daemon(config, tmp_path, redis_conn)
    scheduler = BackgroundScheduler()
    extra = register_report_jobs(scheduler, daemon)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert {"daily_cost_report", "metrics_refresh"} <= set(jobs)
        assert "hour='23'" in str(jobs["daily_cost_report"].trigger) and "minute='55'" in str(jobs["daily_cost_report"].trigger)
        build_ledger(daemon.store.path, config, requests=40, start_ts=NOW - 3600, days=0.01)
        assert extra["metrics"].refresh() > 40
        redis_conn.rpush("rq:queue:default", "job-1", "job-2")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'swarmd_queue_depth{queue="default"} 2.0' in body
        assert 'swarmd_objectives{state="queued"} 0.0' in body
        assert 'swarmd_budget_cap_usd{period="daily"} 5.0' in body
        assert "swarmd_llm_calls_total{action=" in body and "swarmd_llm_latency_seconds_bucket{" in body
        assert "swarmd_llm_cost_usd_total{" in body and "swarmd_llm_escalations_total{" in body
        assert 'direction="in"' in body
        md, png = daily_report(daemon, NOW)
        assert md.parent == tmp_path / "reports" and png.exists()
        assert any(l.startswith("INFO cost report") and str(md) in l for l in log_lines)
    finally:
        extra["metrics"].close()
        daemon.store.close()


def test_metrics_off_and_report_off(tmp_path, redis_conn):
    from swarmd.daemon.service import Daemon

    config = make_config(reports={"daily_at": None}, metrics={"port": None})
    daemon = Daemon(config, tmp_path, redis_conn)
    scheduler = BackgroundScheduler()
    assert register_report_jobs(scheduler, daemon) == {} and scheduler.get_jobs() == []
    daemon.store.close()


def test_config_keys_validated_with_file_and_line():
    from swarmd.config import ConfigError, parse_config
    text = (ROOT / "src" / "swarmd" / "llm_config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"llm_config.yaml:\d+: reports.daily_at: expected a local time"):
        parse_config(text.replace('daily_at: "23:55"', 'daily_at: "7pm"'), "llm_config.yaml")
    with pytest.raises(ConfigError, match=r":\d+: budgets.pacing.threshold_factor: expected a number > 0 and <= 1"):
        parse_config(text.replace("threshold_factor: 0.5", "threshold_factor: 1.5"), "llm_config.yaml")
    with pytest.raises(ConfigError, match=r":\d+: metrics.port: expected a number >= 1 and <= 65535"):
        parse_config(text.replace("port: null", "port: 70000"), "llm_config.yaml")
