"""Flags: the global flags are accepted after the subcommand too; an unknown
flag is named (not "invalid choice"); no command creates a data directory
it only reads; ``memory export -o -`` writes to stdout; ``ask --file``
takes submit's objective lines as well as ``{id, text}`` items."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from swarmd import constants as K
from swarmd.cli import main as swarmctl
from swarmd.cli.daemon import main as swarmd
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import make_config
from tests.fakes.ollama_server import FakeOllama

ROOT = Path(__file__).resolve().parents[2]
SURE = math.log(0.95)


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    for name in ("SWARMD_CONFIG", "REDIS_URL", "SWARMD_DATA_DIR", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(make_config().model_dump(mode="json", exclude={"source"})))
    return path


def test_global_flags_after_the_subcommand(cfg, tmp_path, redis_url, redis_conn, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "redis.url").write_text(redis_url)                # what a running daemon writes
    redis_conn.hset(K.HEARTBEAT, mapping={"pid": os.getpid(), "host": "h", "started_at": time.time(),
                                          "ts": time.time() + 3600, "interval_s": 2})
    for argv in (["status", "--json", "--data-dir", str(data), "--config", str(cfg)],
                 ["--config", str(cfg), "status", "--data-dir", str(data), "--json"],
                 ["--data-dir", str(data), "status", "--json", "--config", str(cfg), "-v"],
                 ["--data-dir", str(data), "--config", str(cfg), "status", "--json"]):   # before: not reset by the subcommand
        capsys.readouterr()
        assert swarmctl(argv) == 0, (argv, capsys.readouterr().err)
        assert json.loads(capsys.readouterr().out)["daemon"]["alive"]
    capsys.readouterr()
    assert swarmctl(["memory", "stats", "--data-dir", str(tmp_path / "none"), "--config", str(cfg)]) == 2
    assert str(tmp_path / "none") in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("prog, argv, bad, close", [
    ("swarmd", ["--wrkers", "2"], "--wrkers", "--workers"),
    ("swarmd", ["worker", "--brst"], "--brst", "--burst"),
    ("swarmctl", ["--dta-dir", "x", "status"], "--dta-dir", "--data-dir"),
    ("swarmctl", ["status", "--jsn"], "--jsn", "--json"),
])
def test_unknown_flags_are_named(prog, argv, bad, close, capsys):
    assert (swarmd if prog == "swarmd" else swarmctl)(argv) == 2
    text = capsys.readouterr().err
    assert f"unknown flag {bad} (did you mean {close}?)" in text and "invalid choice" not in text


def test_no_command_creates_a_data_directory_it_only_reads(cfg, tmp_path, capsys):
    new = tmp_path / "new"
    for argv in (["status"], ["show", "x"], ["logs"], ["memory", "stats"], ["traces", "list"], ["audit"],
                 ["report", "--no-write"], ["approvals"], ["feedback", "x", "--answer", "fix"]):
        capsys.readouterr()
        code = swarmctl(["--config", str(cfg), "--data-dir", str(new), *argv])
        err = " ".join(capsys.readouterr().err.split())
        assert code in (2, 3) and str(new) in err, (argv, code, err)
        assert not new.exists(), argv
    capsys.readouterr()
    assert swarmctl(["--config", str(cfg), "--data-dir", str(new), "status"]) == 3
    assert "does not exist" in " ".join(capsys.readouterr().err.split())


def test_memory_export_to_stdout(cfg, tmp_path):
    from swarmd.memory.records import Memory, Verified
    db = tmp_path / "memory.db"
    memory = Memory(db)
    memory.add(Verified("classify", ("feat", "fix"), "fix crash on empty file", "fix", "human"))
    memory.close()
    proc = subprocess.run([sys.executable, "-m", "swarmd.cli", "--config", str(cfg), "memory", "export",
                           "--db", str(db), "-o", "-"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]          # only the dataset on stdout
    assert len(lines) == 1 and "fix crash on empty file" in json.dumps(lines[0])
    assert "1 lines written to stdout" in proc.stderr
    assert not (tmp_path / "-").exists()


def test_ask_file_takes_submit_objective_lines(cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    items = tmp_path / "objectives.jsonl"
    items.write_text(json.dumps({"action": "classify", "input": "fix crash", "labels": "feat,fix", "id": "s1"}) + "\n"
                     + json.dumps({"id": "a1", "text": "add a flag"}) + "\n"
                     + json.dumps({"action": "classify", "input": "add docs", "labels": ["docs", "fix"]}) + "\n")
    with FakeOllama([Answer("fix", logprobs=[SURE]), Answer("feat", logprobs=[SURE]),
                     Answer("docs", logprobs=[SURE])]) as fast, FakeOllama() as quality, FakeAnthropic() as api:
        config = make_config(fast.url, quality.url, api.url)
        cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
        capsys.readouterr()
        code = swarmctl(["--config", str(cfg), "--data-dir", str(tmp_path / "d"), "ask", "--action", "classify",
                         "--labels", "feat,fix", "--file", str(items), "--no-ledger"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = [json.loads(line) for line in captured.out.splitlines()]
    assert [(r["answer"], r["status"]) for r in results] == [("fix", "accepted"), ("feat", "accepted"),
                                                             ("docs", "accepted")]
    assert results[0]["id"] == "s1" and results[1]["id"] == "a1" and results[2]["id"]     # generated
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "x"}) + "\n" + json.dumps({"action": "classify", "labels": 3, "input": "y"})
                   + "\n")
    assert swarmctl(["--config", str(cfg), "--data-dir", str(tmp_path / "d"), "ask", "--file", str(bad),
                     "--labels", "a,b", "--no-ledger"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "bad.jsonl:1: no action" in err and "bad.jsonl:2: labels: expected" in err
