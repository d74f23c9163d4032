"""`swarmctl submit`: bad objectives are rejected with a reason and exit 2, and
nothing reaches the stream; good ones land in one stream with their ids."""

from __future__ import annotations

import json

import pytest
import yaml

from swarmd import cli
from swarmd import constants as K
from swarmd.objectives import Objective
from swarmd.daemon.store import Store
from tests.daemon.helpers import ROOT, daemon_env


@pytest.fixture
def submit(redis_url, monkeypatch, capsys, tmp_path):
    for key, value in daemon_env(redis_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SWARMD_DATA_DIR", str(tmp_path / "data"))

    def run(*argv, config=ROOT / "src" / "swarmd" / "llm_config.yaml"):
        capsys.readouterr()
        code = cli.main(["--config", str(config), "submit", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


@pytest.mark.parametrize("argv, reason", [
    (["--action", "translate", "--input", "hi"], "unknown action 'translate'"),
    (["--action", "classify", "--labels", "feat,fix", "--input", "   "], "input is empty"),
    (["--action", "classify", "--input", "fix bug"], "labels: expected at least two labels for action 'classify'"),
    (["--action", "classify", "--labels", "feat,feat", "--input", "x"], "labels[1]: expected distinct labels, found 'feat' again"),
    (["--action", "summarize", "--input", "x" * 40000], "input: expected at most 32768 characters (daemon.max_input_chars), found 40000 characters"),
    (["--action", "summarize", "--input", "x", "--id", "bad id!"], "id: expected 1-128 characters of letters, digits, '_' and '-'"),
    (["--action", "summarize", "--input", "x", "--max-cost-usd", "-1"], "max_cost_usd: expected a number >= 0, found -1.0"),
])
def test_bad_objective_rejected_with_reason_and_nothing_enqueued(submit, redis_conn, argv, reason):
    code, out, err = submit(*argv)
    assert code == 2
    assert reason in " ".join(err.split())
    assert redis_conn.exists(K.OBJECTIVE_STREAM) == 0 or redis_conn.xlen(K.OBJECTIVE_STREAM) == 0


def test_bad_line_in_batch_rejects_the_whole_batch(submit, redis_conn, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b'{"action": "summarize", "input": "fine"}\n{"action": "summarize", "input": "\xff\xfe"}\n'
                     b'not json\n')
    code, _out, err = submit("--file", str(path))
    assert code == 2
    assert "batch.jsonl:2: not UTF-8" in err and "batch.jsonl:3: not JSON" in err
    assert redis_conn.exists(K.OBJECTIVE_STREAM) == 0


def test_good_batch_lands_in_one_stream_with_ids(submit, redis_conn, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps({"id": "a1", "action": "classify", "input": "x", "labels": ["feat", "fix"]}) + "\n"
                    + json.dumps({"action": "summarize", "input": "y", "priority": "low", "tags": ["t"]}) + "\n")
    code, out, _err = submit("--file", str(path))
    ids = out.split()
    assert code == 0 and ids[0] == "a1" and ids[1].startswith("obj-")
    entries = redis_conn.xrange(K.OBJECTIVE_STREAM)
    assert [json.loads(f[b"objective"])["id"] for _i, f in entries] == ids
    assert redis_conn.hget(K.objective_key("a1"), "state") == b"submitted"


def test_free_text_and_lines_without_action_become_agent_objectives(submit, redis_conn, tmp_path):
    code, out, _err = submit("please tidy the repo", "--id", "ft1")
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps({"id": "ft2", "input": "bump the version in setup.cfg to 1.2.3"}) + "\n")
    code2, out2, _err = submit("--file", str(path))
    assert (code, out.split(), code2, out2.split()) == (0, ["ft1"], 0, ["ft2"])
    sent = [json.loads(f[b"objective"]) for _i, f in redis_conn.xrange(K.OBJECTIVE_STREAM)]
    assert [(o["id"], o["action"], o["input"]) for o in sent] == [
        ("ft1", "agent", "please tidy the repo"), ("ft2", "agent", "bump the version in setup.cfg to 1.2.3")]


def test_unreachable_redis_exits_3(monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:9/0")
    code = cli.main(["--config", str(ROOT / "src" / "swarmd" / "llm_config.yaml"), "submit", "--action", "summarize", "--input", "x"])
    err = capsys.readouterr().err
    assert code == 3 and "hunter2" not in err and "127.0.0.1:9" in err


def test_store_applies_each_event_once(tmp_path):
    store = Store(tmp_path / "m.db")
    store.add_queued(Objective(id="o1", action="classify", input="x", labels=["a", "b"], submitted_at=1.0))
    attempt = {"tier": "LOCAL_FAST", "provider": "llama_cpp", "model": "m", "answer": "a", "confidence": 0.9,
               "tokens_in": 10, "tokens_out": 1, "cost_usd": 0.0, "latency_ms": 5.0, "outcome": "accepted",
               "error": None, "ts": 2.0}
    payload = {"state": "done", "action": "classify", "attempts": [attempt],
               "result": {"answer": "a", "confidence": 0.9, "tier": "LOCAL_FAST", "model": "m", "cost_usd": 0.0,
                          "escalations": 0}}
    assert store.apply_event("1-0", "finished", "o1", payload) is True
    assert store.apply_event("1-0", "finished", "o1", payload) is False   # re-delivered
    assert store.apply_event("0-9", "started", "o1", {"worker": "w"}) is True   # late: stays done
    record = store.get("o1")
    assert record["state"] == "done" and len(record["attempts"]) == 1
    assert store.counts()["done"] == 1
    total, by_tier = store.spend_since(0)
    assert by_tier == {"LOCAL_FAST": {"calls": 1, "cost_usd": 0.0}}


def test_strategy_flag_reaches_the_stream_and_show_prints_it(submit, redis_conn, tmp_path, capsys):
    code, out, _err = submit("--action", "classify", "--labels", "feat,fix", "--input", "x", "--id", "st1",
                             "--strategy", "local_fallback")
    assert code == 0 and out.split() == ["st1"]
    [(_i, fields)] = redis_conn.xrange(K.OBJECTIVE_STREAM)
    sent = json.loads(fields[b"objective"])
    assert sent["strategy"] == "local_fallback"
    store = Store(tmp_path / "data" / "memory.db")          # as the daemon stores it
    store.add_queued(Objective(**sent))
    store.close()
    capsys.readouterr()
    assert cli.main(["--config", str(ROOT / "src" / "swarmd" / "llm_config.yaml"), "show", "st1"]) == 0
    assert "local_fallback" in [line.split()[-1] for line in capsys.readouterr().out.splitlines()
                                if line.split()[:1] == ["strategy"]]


def test_unknown_strategy_flag_exits_2_and_nothing_is_sent(submit, redis_conn):
    code, _out, err = submit("--action", "summarize", "--input", "x", "--strategy", "api_first")
    assert code == 2 and "invalid choice: 'api_first'" in err
    assert redis_conn.exists(K.OBJECTIVE_STREAM) == 0


def plan_on_the_api(tmp_path):
    """The shipped config with ``actions.plan`` starting at API_FALLBACK: its chain has no local model."""
    data = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())
    data["actions"]["plan"]["tier"] = "API_FALLBACK"
    path = tmp_path / "plan_on_the_api.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_agent_strategy_its_planner_cannot_serve_is_rejected_at_submit(submit, redis_conn, tmp_path):
    config = plan_on_the_api(tmp_path)
    code, out, err = submit("tidy the repo", "--strategy", "local_only", config=config)
    flat = " ".join(err.split())
    assert code == 2 and out == "" and redis_conn.exists(K.OBJECTIVE_STREAM) == 0
    assert ("objective: strategy: expected a strategy with a model to call: no local model in the chain from "
            "API_FALLBACK (actions.plan: an agent objective routes its plan with its strategy), found 'local_only'") in flat
    code, out, _err = submit("tidy the repo", "--strategy", "api_only", "--id", "ok1", config=config)
    assert code == 0 and out.split() == ["ok1"]               # the planner's chain has the API model


def test_a_file_with_such_a_line_is_rejected_whole_naming_each_bad_line(submit, redis_conn, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in [
        {"input": "tidy the repo"},                                                      # cascade: fine
        {"action": "classify", "input": "x", "labels": "feat,fix", "strategy": "local_only"},  # fine
        {"input": "tidy the repo", "strategy": "local_only"},                            # its plan cannot
        {"action": "reason", "input": "why", "strategy": "local_only"},                  # reason starts at the API
    ]) + "\n")
    code, out, err = submit("--file", str(path), config=plan_on_the_api(tmp_path))
    flat = " ".join(err.split())
    assert code == 2 and out == "" and redis_conn.exists(K.OBJECTIVE_STREAM) == 0
    assert "batch.jsonl:3: objective: strategy: expected" in flat and "(actions.plan: an agent objective" in flat
    assert "batch.jsonl:4: objective: strategy: expected a strategy with a model to call: no local model" in flat
    assert "batch.jsonl:1" not in flat and "batch.jsonl:2" not in flat


def test_submitting_an_id_that_is_final_already_leaves_its_state(submit, redis_conn):
    """The state mirror of an objective that ended is not set back to ``submitted`` (the daemon does not
    run a known id again, so it would stay so: ``--wait`` would wait for ever)."""
    redis_conn.hset(K.objective_key("again-1"), mapping={"state": "done", "action": "summarize", "result": "{}"})
    code, out, _err = submit("--action", "summarize", "--input", "x", "--id", "again-1", "--wait", "--timeout", "2")
    assert code == 0 and out.split()[:2] == ["done:", "1"] and "again-1" in out   # then the table
    assert redis_conn.hget(K.objective_key("again-1"), "state") == b"done"
    assert redis_conn.xlen(K.OBJECTIVE_STREAM) == 1          # submitted all the same: the daemon decides
