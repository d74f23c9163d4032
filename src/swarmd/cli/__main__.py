"""``python -m swarmd.cli``: ``swarmctl``."""

import sys

from swarmd.cli.swarmctl import main

sys.exit(main())
