"""A wheel that installs anywhere: the default config and policy ship inside
the package (read through importlib.resources), the default config path
never raises, every Config field is explained in the shipped
``llm_config.yaml``, and a wheel built from the checkout, installed into a
fresh virtualenv outside it, runs ``swarmd`` and ``swarmctl ask`` from
another directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import typing
from importlib import resources
from pathlib import Path

import pytest
from pydantic import BaseModel

from swarmd.config import Config, default_config_path, load_config, shipped_config_path
from tests.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_config_and_policy_ship_inside_the_package_once():
    package = resources.files("swarmd")
    config, policy = package / "llm_config.yaml", package / "policy.yaml"
    assert config.is_file() and policy.is_file()
    assert shipped_config_path() == Path(str(config))
    loaded = load_config(shipped_config_path(), env={})
    assert loaded.policy_path == Path(str(policy))      # the policy beside it
    assert not (ROOT / "llm_config.yaml").exists() and not (ROOT / "policy.yaml").exists()   # one copy
    assert 'swarmd = ["*.yaml"' in (ROOT / "pyproject.toml").read_text()


def test_default_config_path_in_a_cwd_it_cannot_read(tmp_path):
    """An unreadable current directory (its ``llm_config.yaml`` cannot even be
    checked: ``PermissionError``) falls through to the shipped config.  Run in
    a forked child that drops to user ``nobody`` when the suite runs as root
    (root reads any directory)."""
    import importlib.readers  # noqa: F401  (imported lazily by resources.files: nobody cannot read this stdlib)
    shipped = str(shipped_config_path())
    locked = tmp_path / "locked"
    locked.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SWARMD_CONFIG"}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                           # child: never returns into pytest
        code = 1
        try:
            os.chdir(locked)
            os.chmod(".", 0)
            if os.getuid() == 0:                           # root reads any directory: become nobody
                os.setgid(65534)
                os.setuid(65534)
            try:
                Path("llm_config.yaml").is_file()
                os.write(write, b"readable")              # the test would prove nothing
            except PermissionError:
                os.write(write, str(default_config_path(env)).encode())
                code = 0
        except BaseException as exc:                       # noqa: BLE001  (reported to the parent)
            os.write(write, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        said = fh.read()
    _, status = os.waitpid(pid, 0)
    os.chmod(locked, 0o700)
    assert os.waitstatus_to_exitcode(status) == 0, said
    assert said == shipped


def test_default_config_path_in_a_deleted_cwd(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert default_config_path({}) == shipped_config_path()


def _models(tp, seen: dict) -> None:
    """Every pydantic model reachable from ``tp`` (through lists, dicts, unions, Annotated)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen[tp] = None
            for field in tp.model_fields.values():
                _models(field.annotation, seen)
        return
    for arg in typing.get_args(tp):
        _models(arg, seen)


def test_every_config_field_is_explained_in_the_shipped_file():
    """Each field of every model under :class:`Config` (walked recursively)
    appears in the shipped llm_config.yaml with a comment: on its line, on the
    line above it, or named in a comment (keys left out, such as
    ``api_key``)."""
    lines = shipped_config_path().read_text().splitlines()
    comments = "\n".join(line.split("#", 1)[1] for line in lines if "#" in line)
    seen: dict = {}
    _models(Config, seen)
    assert len(seen) > 10
    missing = []
    for model in seen:
        for name, field in model.model_fields.items():
            if field.exclude:                              # Config.source: set by the loader, not a key
                continue
            key = field.alias or name
            keyed = [i for i, line in enumerate(lines) if re.match(rf"\s*(- )?{re.escape(key)}:", line)]
            explained = any("#" in lines[i] or (i and lines[i - 1].strip().startswith("#")) for i in keyed)
            if not explained and not re.search(rf"\b{re.escape(key)}\b", comments):
                missing.append(f"{model.__name__}.{key}")
    assert missing == [], f"fields of Config not explained in the shipped llm_config.yaml: {missing}"
    for key in ("memory:", "max_false_accept:"):
        assert any(line.lstrip().startswith(key) for line in lines), key


@pytest.mark.slow
@pytest.mark.timeout(900)      # builds a wheel, a virtualenv, starts the daemon and loads the embedded model twice
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path, tmp_path_factory):
    source, wheels = tmp_path / "source", tmp_path / "wheels"     # built from a copy: no build/ in the checkout
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SWARMD_CONFIG", "REDIS_URL",
                                                              "SWARMD_DATA_DIR")}
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(wheels), "-q"],
                           capture_output=True, text=True, timeout=600, env=env)
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("swarmd-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    # the dependencies (llama-cpp-python and the rest) come from this interpreter's site-packages, after the
    # venv's own: a .pth file adds the directory without running its .pth files (the checkout's editable hook)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                                "--no-deps", "-q", str(wheel)], capture_output=True, text=True, timeout=600, env=env)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path_factory.mktemp("elsewhere")              # neither the checkout nor a config in it
    env.update(ANTHROPIC_API_KEY="", OLLAMA_HOST="http://127.0.0.1:9")
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import swarmd, swarmd.config as c; "
                            "print(swarmd.__file__); print(c.default_config_path())"], cwd=elsewhere, env=env,
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    where = found.stdout.split()
    assert len(where) == 2 and all(Path(p).is_relative_to(venv) for p in where), where   # the wheel's package, config
    assert Path(where[1]).is_file(), where
    data = tmp_path / "data"
    daemon = subprocess.Popen([str(venv / "bin" / "swarmd"), "--data-dir", str(data), "--workers", "1"],
                              cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (data / "redis.url").exists() or daemon.poll() is not None, 120, "the daemon's redis.url")
        assert daemon.poll() is None, daemon.stderr.read().decode()[-2000:]
        asked = subprocess.run([str(venv / "bin" / "swarmctl"), "--data-dir", str(data), "ask", "--action",
                                "classify", "--labels", "feat,fix,docs", "--input", "fix crash on empty file"],
                               cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
        assert asked.returncode in (0, 1), asked.stderr            # accepted, or unresolved (exit 1)
        assert re.search(r"^\s*answer\s+(feat|fix|docs)\s*$", asked.stdout, re.M), asked.stdout
        assert "Traceback" not in asked.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=300)
    assert daemon.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
