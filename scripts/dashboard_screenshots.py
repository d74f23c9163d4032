"""Write the dashboard screenshots the README shows (docs/dashboard-*.png).

    python scripts/dashboard_screenshots.py

Runs tests/api/test_dashboard.py (a real swarmd, Debian's headless chromium through
chromium-driver and selenium) with ``SWARMD_SCREENSHOTS=docs``; an ordinary test run writes
them to a temporary directory instead, so only this script changes the committed images.
Exit code: pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the dashboard test with its screenshots going to docs/; returns pytest's exit code."""
    env = dict(os.environ, SWARMD_SCREENSHOTS=str(ROOT / "docs"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/api/test_dashboard.py::test_dashboard_live_objective_and_approval"],
                           cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
