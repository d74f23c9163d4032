#!/usr/bin/env bash
# Set everything up, then run the main job: swarmd (daemon + 1 worker + its own Redis)
# classifies the first 200 real commit messages and reports accuracy and cost.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python examples/commit_types.py "$@"
