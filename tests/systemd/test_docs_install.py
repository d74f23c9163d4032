"""docs/systemd.md: every ``swarmctl`` example reaches the service's
configuration (through ``--data-dir /var/lib/swarmd``, where the daemon
records its config in ``config.path``, or ``--config``), and the production
install carries no test extras and no ``systemd-container``: checked on the
text, and by running ``scripts/bootstrap.sh`` as the install block does
(``PRODUCTION=1``) with stand-ins for apt-get and Python that record what
they were asked to install."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "systemd.md").read_text()


def install_block() -> str:
    return DOC.split("## Install", 1)[1].split("```sh", 1)[1].split("```", 1)[0]


def test_every_swarmctl_example_reaches_the_service_config():
    examples = [line for line in DOC.splitlines() if re.search(r"swarmctl\s+(-|\w)", line)
                and ("sudo" in line or "`swarmctl --" in line)]
    assert len(examples) >= 3, examples
    for line in examples:
        assert "--data-dir /var/lib/swarmd" in line or "--config" in line, line
    assert "config.path" in DOC


def test_the_install_block_is_a_production_install():
    block = install_block()
    bootstrap = [line for line in block.splitlines() if "bootstrap.sh" in line and not line.lstrip().startswith("#")]
    assert len(bootstrap) == 1 and "PRODUCTION=1" in bootstrap[0], bootstrap
    commands = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))
    assert "systemd-container" not in commands and "dev]" not in commands and ",dev" not in commands
    assert "/opt/swarmd/src/swarmd/llm_config.yaml" in block and "/opt/swarmd/src/swarmd/policy.yaml" in block
    for path in ("src/swarmd/llm_config.yaml", "src/swarmd/policy.yaml"):
        assert (ROOT / path).is_file()


FAKE_PY = """#!/bin/sh
# stands in for python: records pip installs, makes a venv of itself
echo "python $*" >> "$LOG"
case "$*" in
  *"-m venv"*) mkdir -p .venv/bin && cp "$0" .venv/bin/python ;;
esac
exit 0
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$LOG"
exit 0
"""


def run_bootstrap(tmp_path: Path, production: bool) -> str:
    repo = tmp_path / ("prod" if production else "dev")
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", repo / "scripts" / "bootstrap.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = tmp_path / f"bin-{repo.name}"
    bin_dir.mkdir()
    for name, text in (("python", FAKE_PY), ("apt-get", FAKE_APT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for tool in ("id", "cat", "nproc", "dirname", "mkdir", "cp", "touch", "sh"):   # nothing else on PATH:
        os.symlink(shutil.which(tool), bin_dir / tool)                               # no g++, bwrap, nspawn
    log = tmp_path / f"{repo.name}.log"
    env = {"PATH": str(bin_dir), "PYTHON": str(bin_dir / "python"), "LOG": str(log), "HOME": str(tmp_path),
           **({"PRODUCTION": "1"} if production else {})}
    proc = subprocess.run([shutil.which("bash"), str(repo / "scripts" / "bootstrap.sh")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return log.read_text()


def test_bootstrap_production_installs_no_test_tools(tmp_path):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("bootstrap.sh calls sudo when not root")
    prod, dev = run_bootstrap(tmp_path, True), run_bootstrap(tmp_path, False)
    assert "systemd-container" not in prod and "systemd-container" in dev
    assert "bubblewrap" in prod and "redis-server" in prod                   # what the service needs stays
    assert "pip install -q -e .[local,qdrant,otel]" in prod and "dev" not in prod.split("pip install -q -e", 1)[1]
    assert "pip install -q -e .[local,dev,qdrant,otel]" in dev
