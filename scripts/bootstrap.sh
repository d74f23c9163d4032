#!/usr/bin/env bash
# Set up everything swarmd needs on a fresh Debian/Ubuntu machine with Python 3.11:
#   - Debian packages that are missing: python3-venv, a C/C++ toolchain (llama-cpp-python
#     compiles from source, 6-15 min the first time; pip caches the wheel after), redis-server,
#     bubblewrap (filesystem confinement of governed shell commands), systemd-container
#     (systemd-nspawn, for the systemd end-to-end test; not with PRODUCTION=1)
#   - a virtualenv in .venv with swarmd installed editable, with the [local,dev,qdrant] extras
#     (PRODUCTION=1: [local,qdrant,otel], what the service runs; no test tools)
# Idempotent: a second run only checks. Source it or run it; it never starts services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PY=${PYTHON:-python3}
# PRODUCTION=1 (docs/systemd.md): no test extras, no systemd-container
PRODUCTION=${PRODUCTION:-0}
EXTRAS="local,dev,qdrant,otel"
if [ "$PRODUCTION" = 1 ]; then EXTRAS="local,qdrant,otel"; fi

need_apt=()
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "swarmd needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=python3.11" >&2; exit 2; }
"$PY" -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
command -v g++ >/dev/null || need_apt+=(build-essential)
command -v redis-server >/dev/null || need_apt+=(redis-server)
# bubblewrap confines the governor's shell commands to the objective's workspace
# (without it they run with rlimits only; the tests exercise both)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
# systemd-nspawn boots a real systemd for tests/systemd/ (the units, installed as docs/systemd.md says)
if [ "$PRODUCTION" != 1 ]; then
  command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
  # a real headless browser for tests/api/test_dashboard.py (a browser cannot be downloaded at test time)
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # the Debian package starts a system redis; swarmd and its tests start their own
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.swarmd-installed
# the stamp holds the extras installed (empty: from before it did; taken as matching)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -s "$stamp" ] && [ "$(cat "$stamp")" != "$EXTRAS" ]; }; then
  echo "==> installing swarmd and its dependencies into .venv (first time: llama-cpp-python compiles, 6-15 min)"
  .venv/bin/python -m pip install -q --upgrade pip
  # llama.cpp's native build enables AMX on CPUs that advertise it; in VMs that do not
  # grant AMX tile state it segfaults in its first decode (seen on these machines).
  # Build for AVX2/FMA/F16C explicitly: safe on any x86-64 from 2013 on.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$EXTRAS" > "$stamp"
fi
