#!/usr/bin/env bash
# Set everything up, then run the main job: swarmd (daemon + 1 worker + its own Redis)
# classifies 240 real commit messages in two phases (a reviewer's feedback and a memory
# consolidation in between) and reports accuracy, cost and the quality gate before/after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python examples/commit_types.py "$@"
