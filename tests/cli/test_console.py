"""A quiet console: commands print results on stdout and errors on stderr,
once each; log lines (loguru, RQ's :mod:`logging`, llama.cpp's C logging)
go to the log file, and to stderr only with ``-v``.  Real commands run as
processes; their stdout and stderr are captured apart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.daemon.helpers import daemon_env, write_config
from tests.fakes.config import make_config
from tests.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: A loguru line in swarmd's format (``time | LEVEL | pid | message``) or loguru's default one.
LOG_LINE = re.compile(r"\|\s*(TRACE|DEBUG|INFO|SUCCESS|WARNING|ERROR|CRITICAL)\s*\|")
#: A line of llama.cpp's C logging as it printed it (``llama_kv_cache_iswa: ...``, ``load_tensors: ...``).
LLAMA_LINE = re.compile(r"^(llama_\w+|ggml_\w+|gguf_\w+|print_info|load_tensors|load|init_tokenizer): ", re.M)


def swarmctl(*argv: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swarmd.cli", *argv], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env or dict(os.environ, PYTHONPATH=str(ROOT / "src")))


@pytest.fixture
def store(tmp_path):
    """A data directory with a store (memory.db) and a config file: (config path, data dir)."""
    from swarmd.costs import Ledger
    data = tmp_path / "data"
    data.mkdir()
    Ledger(data / "memory.db").close()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(make_config().model_dump(mode="json", exclude={"source"})))
    return cfg, data


def test_memory_consolidate_logs_to_the_file_and_to_stderr_only_with_v(store):
    cfg, data = store
    quiet = swarmctl("--config", str(cfg), "--data-dir", str(data), "memory", "consolidate")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip()                                         # its result
    assert not LOG_LINE.search(quiet.stderr) and not LOG_LINE.search(quiet.stdout), quiet.stderr
    logged = (data / "swarmctl.log").read_text()
    assert "memory: consolidated" in logged                             # the line went to the log file
    loud = swarmctl("memory", "consolidate", "--config", str(cfg), "--data-dir", str(data), "-v")
    assert loud.returncode == 0 and "memory: consolidated" in loud.stderr and LOG_LINE.search(loud.stderr)
    assert not LOG_LINE.search(loud.stdout)                             # never on stdout


def test_daemon_output_holds_no_log_or_rq_lines(tmp_path, redis_url):
    cfg = write_config(tmp_path, fast_provider="echo")
    data = tmp_path / "data"
    out, err = tmp_path / "out", tmp_path / "err"
    proc = subprocess.Popen([sys.executable, "-m", "swarmd", "--workers", "0", "--data-dir", str(data),
                             "--config", str(cfg)], env=daemon_env(redis_url), stdout=open(out, "wb"),
                            stderr=open(err, "wb"))
    log = data / "daemon_hybrid.log"
    try:
        wait_until(lambda: log.exists() and "Acquired scheduler lock" in log.read_text(), 120,
                   lambda: f"RQ's scheduler line in the daemon log; stderr: {err.read_text()[-2000:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 0
    text = out.read_text() + err.read_text()
    assert "Acquired scheduler lock" not in text and not LOG_LINE.search(text), text[-2000:]
    assert "swarmd starting" in log.read_text() and "swarmd stopped" in log.read_text()


def test_errors_have_one_prefix(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(make_config().model_dump(mode="json", exclude={"source"})))
    proc = swarmctl("--config", str(cfg), "submit", "--action", "classify", "--input", "x", "--labels", "a",
                    "--redis-url", "redis://127.0.0.1:9/0")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("bad input: nothing submitted:")
    assert "objective: labels:" in proc.stderr and "objective: objective:" not in proc.stderr
    for line in proc.stderr.splitlines():                               # no prefix repeated on any line
        parts = [p.strip() for p in line.split(":")]
        assert all(a != b for a, b in zip(parts, parts[1:]) if a), line


@pytest.mark.slow
def test_llama_cpp_logging_goes_through_the_log(tmp_path):
    """``ask`` with the embedded model: no llama.cpp line on the terminal
    (they went to stderr as ``llama_kv_cache_iswa: ...``); with ``-vv`` they
    come through loguru, prefixed ``llama.cpp:``."""
    data = tmp_path / "data"
    data.mkdir()
    argv = ("--data-dir", str(data), "ask", "--action", "classify", "--labels", "feat,fix,docs", "--input",
            "fix crash on empty file", "--strategy", "local_only", "--no-ledger")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), ANTHROPIC_API_KEY="", OLLAMA_HOST="http://127.0.0.1:9")
    env.pop("SWARMD_CONFIG", None)
    quiet = swarmctl(*argv, cwd=ROOT, env=env)
    assert quiet.returncode in (0, 1), quiet.stderr
    assert "answer" in quiet.stdout
    assert not LLAMA_LINE.search(quiet.stderr) and not LOG_LINE.search(quiet.stderr), quiet.stderr[-2000:]
    loud = swarmctl("-vv", *argv, cwd=ROOT, env=env)
    assert "llama.cpp: " in loud.stderr and LOG_LINE.search(loud.stderr)
    assert not LLAMA_LINE.search(loud.stderr), loud.stderr[-2000:]     # every llama.cpp line came through loguru
