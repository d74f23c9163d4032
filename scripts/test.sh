#!/usr/bin/env bash
# Set everything up, then run the whole test suite (the real embedded model included).
# The suite starts its own redis-server on a free loopback port; nothing else must run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
