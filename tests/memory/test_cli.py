"""``swarmctl feedback`` and ``swarmctl memory stats|consolidate|export`` on a
store written by the in-process daemon (real Redis, fakes for the tiers)."""

from __future__ import annotations

import json
from pathlib import Path

from swarmd.cli.swarmctl import main
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import LABELS, SURE, UNSURE

ROOT_CONFIG = str(Path(__file__).resolve().parents[2] / "src" / "swarmd" / "llm_config.yaml")


def _swarm(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[SURE]), Answer("fix", logprobs=[UNSURE])]) as fast, \
            FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        labels = ",".join(LABELS)
        swarm.run({"id": "c-1", "action": "classify", "input": "local answer", "labels": labels},
                  {"id": "c-2", "action": "classify", "input": "teacher answer", "labels": labels})
    return swarm


def swarmctl(tmp_path, *argv):
    return main(["--config", ROOT_CONFIG, "--data-dir", str(tmp_path / "data"), *argv])


def test_feedback_file_with_a_bad_line_exits_2_naming_it_and_applies_nothing(swarm_factory, tmp_path, capsys):
    swarm = _swarm(swarm_factory)
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps({"id": "c-1", "answer": "docs"}) + "\n" + json.dumps({"id": "c-9", "verdict": "good"}) + "\n")
    assert swarmctl(tmp_path, "feedback", "--file", str(path)) == 2
    assert f"{path}:2: unknown objective id 'c-9'" in capsys.readouterr().err
    assert swarm.daemon.memory.count("source='human'") == 0
    assert swarmctl(tmp_path, "feedback", "c-1", "--answer", "docs", "--note", "reviewed") == 0
    assert "1 feedback record(s) written; 1 say the judged answer was wrong" in capsys.readouterr().out
    assert swarmctl(tmp_path, "feedback", "c-1", "--answer", "chore") == 2
    assert "answer 'chore' is not one of objective c-1's labels" in capsys.readouterr().err


def test_memory_stats_json_has_the_documented_keys(swarm_factory, tmp_path, capsys):
    _swarm(swarm_factory)
    assert swarmctl(tmp_path, "feedback", "c-1", "--answer", "docs") == 0
    capsys.readouterr()
    assert swarmctl(tmp_path, "memory", "stats", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    (gate,) = data["gates"]
    assert {"verified", "false_accept", "false_accept_upper", "coverage", "threshold"} <= set(gate)
    assert (gate["model"], gate["verified"], gate["accepted"], gate["false_accept"], gate["threshold"]) == \
        ("small", 2, 1, 1.0, 0.7)          # c-1 accepted and wrong; c-2 rejected (teacher record)
    assert gate["false_accept_upper"] == 1.0 and gate["coverage"] == 0.5


def test_memory_consolidate_and_export_exit_0_with_a_summary(swarm_factory, tmp_path, capsys):
    _swarm(swarm_factory)
    assert swarmctl(tmp_path, "memory", "consolidate", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["records_after"] == 1 and report["groups"][0]["version"] is None     # below min_verified
    out = tmp_path / "train.jsonl"
    assert swarmctl(tmp_path, "memory", "export", "--format", "alpaca", "-o", str(out), "--since", "1d") == 0
    assert "1 lines written" in capsys.readouterr().out
    assert json.loads(out.read_text())["output"] == "feat"
    assert swarmctl(tmp_path, "memory", "export", "-o", str(out), "--since", "yesterday") == 2


def test_a_data_directory_without_a_store_is_bad_input(tmp_path, capsys):
    assert swarmctl(tmp_path, "memory", "stats") == 2
    assert "does not exist" in capsys.readouterr().err
