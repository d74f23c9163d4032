"""``swarmctl ask``: one input or a JSONL file through the real router, with
the local tiers on fake Ollama hosts and the API tier on the fake Anthropic
service, reached through the official clients; every call lands in the
ledger of the data directory, and every priced call in the daemon's shared
budget (the suite's real redis-server) when its Redis is known."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from swarmd.cli import main as swarmctl
from swarmd.costs import Budget, Ledger
from swarmd.daemon.redis_server import write_url_file
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import API_PRICES, make_config
from tests.fakes.ollama_server import FakeOllama

SURE, UNSURE = math.log(0.95), math.log(0.3)
LABELS = "feat,fix,docs"


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """``run(fast, quality, api, *argv, budgets=None)``: swarmctl ask against those fakes, with
    ``budgets`` as the config's (default: no caps) -> (code, stdout, stderr)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    monkeypatch.delenv("SWARMD_CONFIG", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)

    def run(fast, quality, api, *argv: str, budgets: dict | None = None):
        config = make_config(fast.url, quality.url, api.url, budgets=budgets)
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
        capsys.readouterr()
        code = swarmctl(["--config", str(path), "--data-dir", str(tmp_path / "data"), "ask", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def ledger_rows(tmp_path) -> list[dict]:
    ledger = Ledger(tmp_path / "data" / "memory.db")
    try:
        return ledger.rows()
    finally:
        ledger.close()


def test_one_input_escalates_and_prints_the_accepted_answer(run, tmp_path):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("feat", logprobs=[SURE])]) as quality, FakeAnthropic() as api:
        code, out, _err = run(fast, quality, api, "--action", "classify", "--labels", LABELS,
                              "--input", "add a --dry-run flag")
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["answer"].strip() == "feat" and fields["tier"].strip() == "LOCAL_QUALITY"
    assert fields["status"].strip() == "accepted" and fields["escalations"].strip() == "1"
    assert "add a --dry-run flag" in json.dumps(fast.model_requests()[0].json)
    assert api.requests == []
    assert [(r["tier"], r["outcome"]) for r in ledger_rows(tmp_path)] == [
        ("LOCAL_FAST", "escalated"), ("LOCAL_QUALITY", "accepted")]


def test_json_result_and_exit_1_when_unresolved(run, tmp_path):
    with FakeOllama([Answer("fix", logprobs=[math.log(0.4)])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[math.log(0.6)])]) as quality, \
         FakeAnthropic([Answer("banana", tokens_in=100, tokens_out=2)]) as api:
        code, out, _err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x", "--json")
    assert code == 1
    result = json.loads(out)
    assert {"id", "answer", "confidence", "tier", "model", "status", "escalations", "cost_usd", "latency_ms"} <= set(result)
    assert (result["status"], result["answer"], result["escalations"]) == ("unresolved", "docs", 2)
    assert result["cost_usd"] == pytest.approx((100 * API_PRICES[0] + 2 * API_PRICES[1]) / 1e6)
    assert [r["outcome"] for r in ledger_rows(tmp_path)] == ["escalated", "escalated", "rejected"]


def test_file_one_json_line_per_item_with_its_id_and_labels(run, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "a", "text": "fix crash"}) + "\n\n"
                     + json.dumps({"id": "b", "text": "is it raining", "labels": "yes,no"}) + "\n")
    with FakeOllama([Answer("fix", logprobs=[SURE]), Answer("no", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("yes", logprobs=[math.log(0.5)])]) as quality, FakeAnthropic(["maybe"]) as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--file", str(items))
    assert code == 1                                     # one item unresolved: exit 1; every line printed
    results = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["answer"], r["status"]) for r in results] == [("a", "fix", "accepted"),
                                                                       ("b", "yes", "unresolved")]
    assert "2 items, 1 unresolved" in err
    assert [r["outcome"] for r in ledger_rows(tmp_path)] == ["accepted", "escalated", "escalated", "rejected"]


def test_bad_file_lines_exit_2_naming_each_line_and_nothing_is_routed(run, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b"}\n\xff\n[1]\n')
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic() as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--file", str(items))
        assert fast.requests == quality.requests == api.requests == []
    assert code == 2 and out == ""
    flat = " ".join(err.split())
    for expected in ("items.jsonl:2: missing or empty string field(s): text", "items.jsonl:3: not UTF-8",
                     "items.jsonl:4: expected a JSON object, found list"):
        assert expected in flat


@pytest.mark.parametrize("argv, reason", [
    (["--action", "translate", "--input", "x"], "translate"),
    (["--action", "classify", "--labels", LABELS, "--input", "  "], "--input is empty"),
    (["--action", "classify", "--labels", LABELS], "give --input TEXT or --file"),
])
def test_bad_request_exits_2_before_any_call(run, argv, reason):
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic() as api:
        code, out, err = run(fast, quality, api, *argv)
        assert fast.requests == quality.requests == api.requests == []
    assert code == 2 and out == "" and reason in " ".join(err.split())


def test_no_ledger_writes_no_rows(run, tmp_path):
    with FakeOllama([Answer("fix", logprobs=[SURE])]) as fast, FakeOllama() as quality, FakeAnthropic() as api:
        code, _out, _err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                               "--no-ledger")
    assert code == 0
    assert not (tmp_path / "data" / "memory.db").exists() or ledger_rows(tmp_path) == []


def test_strategy_api_only_asks_the_api_and_no_local_tier(run, tmp_path):
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic([Answer("fix", tokens_in=50, tokens_out=1)]) as api:
        code, out, _err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                              "--strategy", "api_only", "--json")
        assert fast.requests == quality.requests == []
    assert code == 0 and (json.loads(out)["tier"], json.loads(out)["answer"]) == ("API_FALLBACK", "fix")
    assert [(r["tier"], r["outcome"]) for r in ledger_rows(tmp_path)] == [("API_FALLBACK", "accepted")]


def test_strategy_local_only_stays_unresolved_without_the_api(run, tmp_path):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[UNSURE])]) as quality, FakeAnthropic(["feat"]) as api:
        code, out, _err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                              "--strategy", "local_only", "--json")
        assert api.requests == []
    assert code == 1 and json.loads(out)["status"] == "unresolved"


def test_unknown_strategy_exits_2_before_any_call(run):
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic() as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                             "--strategy", "fast")
        assert fast.requests == quality.requests == api.requests == []
    assert code == 2 and out == "" and "invalid choice: 'fast'" in err


# --------------------------------------------------------------------------- the shared budget

DAILY_CAP = {"daily_usd": 0.01, "monthly_usd": None}


def spend_daily_cap(redis_conn) -> Budget:
    """Spend the whole :data:`DAILY_CAP` in the shared budget the way a worker's router does
    (reserve, call, settle); returns that budget."""
    budget = Budget(redis_conn, make_config(budgets=DAILY_CAP))
    reservation = budget.try_reserve(DAILY_CAP["daily_usd"])
    assert budget.settle(reservation, DAILY_CAP["daily_usd"])
    return budget


def test_a_daily_cap_spent_by_the_workers_stops_the_escalation_to_the_api(run, tmp_path, redis_url, redis_conn):
    budget = spend_daily_cap(redis_conn)
    write_url_file(tmp_path / "data", redis_url)                 # as the running daemon does
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[UNSURE])]) as quality, FakeAnthropic(["feat"]) as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                             "--json", budgets=DAILY_CAP)
        assert len(quality.model_requests()) == 1 and api.requests == []   # escalated, then stopped at the API
    result = json.loads(out)
    assert code == 1 and (result["status"], result["reason"], result["escalations"]) == ("unresolved", "budget", 1)
    assert "priced tiers refused" not in err       # refused by the shared budget found through redis.url, not for lack of it
    [daily, _monthly] = budget.status(fresh=True)
    assert (daily.spent_usd, daily.reserved_usd) == (DAILY_CAP["daily_usd"], 0.0)


def test_api_only_ask_is_refused_by_the_spent_daily_cap(run, redis_url, redis_conn):
    spend_daily_cap(redis_conn)
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic(["feat"]) as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                             "--strategy", "api_only", "--redis-url", redis_url, budgets=DAILY_CAP)
        assert api.requests == fast.requests == quality.requests == []
    assert code == 1 and "daily cap $0.0100 reached" in " ".join(err.split())


def test_the_cost_of_an_api_answer_is_added_to_the_shared_spend(run, redis_url, redis_conn):
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic([Answer("fix", tokens_in=50, tokens_out=1)]) as api:
        code, out, _err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                              "--strategy", "api_only", "--json", "--redis-url", redis_url,
                              budgets={"daily_usd": 1.0, "monthly_usd": 10.0})
    result = json.loads(out)
    assert code == 0 and (result["status"], result["tier"]) == ("accepted", "API_FALLBACK")
    assert result["cost_usd"] == pytest.approx((50 * API_PRICES[0] + 1 * API_PRICES[1]) / 1e6)
    for period in Budget(redis_conn, make_config(budgets={"daily_usd": 1.0, "monthly_usd": 10.0})).status(fresh=True):
        assert (period.spent_usd, period.reserved_usd) == (pytest.approx(result["cost_usd"], abs=1e-9), 0.0)


def test_without_a_redis_a_capped_config_refuses_the_api_and_says_why(run):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, \
         FakeOllama([Answer("docs", logprobs=[UNSURE])]) as quality, FakeAnthropic(["feat"]) as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                             "--json", budgets=DAILY_CAP)
        assert api.requests == []
    assert code == 1 and json.loads(out)["reason"] == "budget"
    flat = " ".join(err.split())
    assert "priced tiers refused" in flat and "no Redis known" in flat


def test_without_a_redis_an_uncapped_config_still_reaches_the_api(run):
    with FakeOllama() as fast, FakeOllama() as quality, FakeAnthropic([Answer("fix", tokens_in=50, tokens_out=1)]) as api:
        code, out, err = run(fast, quality, api, "--action", "classify", "--labels", LABELS, "--input", "x",
                             "--strategy", "api_only", "--json")
    assert code == 0 and json.loads(out)["tier"] == "API_FALLBACK" and "refused" not in err
