#!/usr/bin/env python3
"""Predict what a workload costs with swarmd versus the API tier alone.

    python cost_analysis.py --simulate --days 30 [--profile light|medium|heavy|FILE.yaml] [--json] [--plot out.png]
    python cost_analysis.py --from-ledger memory.db [--days N] [--iterations-per-day N]

The same command as ``swarmctl cost-analysis`` (``--help`` documents every
flag), for a checkout without the console scripts.  The command line lives in
:mod:`swarmd.cli.costs`, the analysis in :mod:`swarmd.costs.analysis`.
"""

import sys
from pathlib import Path

try:
    from swarmd.cli import main
except ImportError:  # run from a checkout without installing: use ./src
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from swarmd.cli import main

if __name__ == "__main__":
    sys.exit(main(["cost-analysis", *sys.argv[1:]]))
