"""``swarmctl logs``: the last lines of the daemon log, and ``-f`` following
what is written after them (a real subprocess, polled with a deadline)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from swarmd.cli import main as swarmctl
from tests.wait import LONG_S, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "src" / "swarmd" / "llm_config.yaml")


@pytest.fixture
def log(tmp_path):
    """The daemon log (``daemon.log.path`` of the shipped config) in a fresh data dir, 5 lines."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "daemon_hybrid.log"
    path.write_text("".join(f"line {i}\n" for i in range(1, 6)))
    return path


def test_last_n_lines(log, capsys):
    code = swarmctl(["--config", CONFIG, "--data-dir", str(log.parent), "logs", "-n", "2"])
    assert (code, capsys.readouterr().out) == (0, "line 4\nline 5\n")


def test_default_is_the_last_50_lines(log, capsys):
    log.write_text("".join(f"line {i}\n" for i in range(1, 61)))
    assert swarmctl(["--config", CONFIG, "--data-dir", str(log.parent), "logs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "line 11" and out[-1] == "line 60" and len(out) == 50


def test_no_log_exits_2_naming_where_it_looked(tmp_path, capsys):
    code = swarmctl(["--config", CONFIG, "--data-dir", str(tmp_path / "empty"), "logs"])
    assert code == 2
    assert f"no log at {tmp_path / 'empty' / 'daemon_hybrid.log'}" in capsys.readouterr().err


def test_negative_lines_is_bad_input(log, capsys):
    assert swarmctl(["--config", CONFIG, "--data-dir", str(log.parent), "logs", "-n", "-3"]) == 2
    assert "--lines must be >= 0" in capsys.readouterr().err


@contextmanager
def following(log):
    """``swarmctl logs -f -n 1`` on ``log`` as a real process; yields (process, lines it printed so far),
    and interrupts it (SIGINT) on exit."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # Ctrl-C as in a terminal: a suite run in the background of a non-interactive shell inherits
    # SIGINT ignored (POSIX), the child would inherit that too and never see the interrupt
    proc = subprocess.Popen([sys.executable, "-m", "swarmd.cli", "--config", CONFIG, "--data-dir", str(log.parent),
                             "logs", "-f", "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        wait_until(lambda: seen == ["line 5\n"], LONG_S, lambda: f"the last line first, got {seen!r}")
        yield proc, seen
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=LONG_S)
        except subprocess.TimeoutExpired:   # say what it printed; an earlier failure shows as the context
            proc.kill()
            _out, err = proc.communicate(timeout=30)
            raise AssertionError(f"swarmctl logs -f still running 30 s after SIGINT; printed {seen!r}, "
                                 f"stderr {err[-2000:]!r}")


def test_follow_prints_lines_written_later_until_interrupted(log):
    with following(log) as (proc, seen):
        with log.open("a") as fh:
            fh.write("written later 1\nwritten later 2\n")
        wait_until(lambda: seen[1:] == ["written later 1\n", "written later 2\n"], LONG_S,
                   lambda: f"the appended lines, got {seen!r}")
        assert proc.poll() is None                  # still following
    assert proc.returncode == 130 and "interrupted" in proc.stderr.read()


def test_follow_goes_on_in_the_new_file_after_a_rotation(log):
    with following(log) as (_proc, seen):
        log.rename(log.with_name("daemon_hybrid.2026-12-01.log"))      # what loguru's rotation does
        log.write_text("after rotation\n")
        wait_until(lambda: seen[1:] == ["after rotation\n"], LONG_S, lambda: f"the new file's line, got {seen!r}")
