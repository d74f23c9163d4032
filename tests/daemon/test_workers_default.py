"""`swarmd`'s worker count: cores / n_threads by default, a warning when oversubscribed,
and `swarmctl status` saying out loud that no worker runs (issue 22)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import redis

from swarmd import constants as K
from swarmd.cli import swarmctl
from swarmd.cli.daemon import build_parser
from swarmd.config import parse_config
from swarmd.daemon.supervisor import available_cores, default_workers, oversubscription
from tests.daemon.helpers import ROOT, daemon_env, write_config
from tests.wait import LONG_S, wait_until

SHIPPED = (ROOT / "src" / "swarmd" / "llm_config.yaml").read_text()


def _with_threads(text: str, n_threads: str) -> str:
    out, n = re.subn(r"(?m)^(      n_threads:) \S+", rf"\1 {n_threads}", text, count=1)
    assert n == 1
    return out


def test_default_workers_is_the_cores_over_the_embedded_models_threads():
    shipped = parse_config(SHIPPED, "llm_config.yaml", env={})
    assert shipped.tiers["LOCAL_FAST"][0].n_threads == 2
    # expected by hand: max(1, cores // 2)
    assert [default_workers(shipped, cores) for cores in (1, 2, 3, 4, 8)] == [1, 1, 1, 2, 4]
    every_cpu = parse_config(_with_threads(SHIPPED, "null"), "c.yaml", env={})     # null: every CPU per worker
    assert [default_workers(every_cpu, cores) for cores in (1, 2, 16)] == [1, 1, 1]
    # no llama_cpp model: a worker waits on the network, one per core
    echo = parse_config(SHIPPED.replace("    - provider: llama_cpp\n", "    - provider: echo\n", 1)
                        .replace("      quantization: q8_0      # see `quantization` above\n", ""), "e.yaml", env={})
    assert default_workers(echo, 2) == 2
    assert build_parser().parse_args([]).workers is None      # no --workers: the default, not 0


def test_oversubscription_warning_names_the_numbers_and_the_fix():
    shipped = parse_config(SHIPPED, "llm_config.yaml", env={})
    assert oversubscription(shipped, 1, 2) is None
    assert oversubscription(shipped, 2, 4) is None
    assert oversubscription(shipped, 0, 2) is None
    assert oversubscription(shipped, 2, 2) == (
        "2 workers x n_threads 2 = 4 threads on 2 cores: oversubscribed, llama.cpp's spinning threads run several "
        "times slower; use --workers 1 (the default) or lower n_threads in the config")


def test_shipped_systemd_unit_does_not_oversubscribe_two_cores():
    unit = (ROOT / "systemd" / "swarmd.service").read_text()
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    match = re.search(r"--workers (\d+)", start)
    shipped = parse_config(SHIPPED, "llm_config.yaml", env={})
    assert match is None or oversubscription(shipped, int(match.group(1)), 2) is None, start


def _config(tmp_path, n_threads: int):
    """LOCAL_FAST echo (no model loaded in a worker); LOCAL_QUALITY the embedded
    model with ``n_threads`` (never called here): the first llama_cpp model of the chain."""
    text = write_config(tmp_path, fast_provider="echo").read_text()
    quality = ("  LOCAL_QUALITY:\n    - provider: llama_cpp\n      model: gemma-3-270m-q8_0\n      path: null\n"
               f"      n_threads: {n_threads}\n      price_per_mtok_in: 0.0\n      price_per_mtok_out: 0.0\n"
               "      context_window: 4096\n      timeout_s: 60\n\n  API_FALLBACK:\n")
    text = re.sub(r"(?ms)^  LOCAL_QUALITY:\n.*?^  API_FALLBACK:\n", quality, text, count=1)
    path = tmp_path / "llm_config.yaml"
    path.write_text(text)
    return path


def _daemon(tmp_path, redis_url, config, *flags: str) -> subprocess.Popen:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "swarmd", *flags, "--data-dir", str(data), "--config", str(config)],
                            env=daemon_env(redis_url), stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "swarmd.stderr", "ab"))


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=LONG_S)


def _started_line(tmp_path, proc) -> str:
    log = tmp_path / "data" / "daemon_hybrid.log"

    def started() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"swarmd exited with {proc.returncode}: {(tmp_path / 'swarmd.stderr').read_text()}")
        text = log.read_text() if log.exists() else ""
        return next((line for line in text.splitlines() if "swarmd starting" in line), None)

    return wait_until(started, LONG_S, "swarmd's start-up line in its log")


def test_swarmd_without_workers_starts_the_default_and_warns_when_oversubscribed(tmp_path, redis_url, redis_conn):
    cores = available_cores()
    proc = _daemon(tmp_path / "a", redis_url, _config(_mk(tmp_path / "a"), cores))
    try:
        line = _started_line(tmp_path / "a", proc)
    finally:
        _stop(proc)
    assert f"1 worker(s) on {cores} cores" in line           # cores // cores
    assert "oversubscribed" not in (tmp_path / "a" / "swarmd.stderr").read_text()

    proc = _daemon(tmp_path / "b", redis_url, _config(_mk(tmp_path / "b"), cores), "--workers", "2")
    try:
        _started_line(tmp_path / "b", proc)
    finally:
        _stop(proc)
    expected = f"2 workers x n_threads {cores} = {2 * cores} threads on {cores} cores: oversubscribed"
    assert f"swarmd: warning: {expected}" in (tmp_path / "b" / "swarmd.stderr").read_text()
    assert expected in (tmp_path / "b" / "data" / "daemon_hybrid.log").read_text()


def _mk(path):
    path.mkdir()
    return path


def test_status_warns_when_no_worker_runs(tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    config = write_config(tmp_path, fast_provider="echo")
    proc = _daemon(tmp_path, redis_url, config, "--workers", "0")
    try:
        wait_until(lambda: proc.poll() is None and redis_conn.exists(K.HEARTBEAT), LONG_S, "the daemon's heartbeat")
        for key, value in daemon_env(redis_url).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = swarmctl.main(["--config", str(config), "status"])
        text = capsys.readouterr()
        assert code == 0, text
        assert "warning: no worker is running: objectives stay queued" in text.err
        assert "swarmd --workers N" in text.err
        code = swarmctl.main(["--config", str(config), "status", "--json"])
        data = json.loads(capsys.readouterr().out)
        assert code == 0 and data["workers"] == []
        assert any(w.startswith("no worker is running") for w in data["warnings"])
    finally:
        _stop(proc)
