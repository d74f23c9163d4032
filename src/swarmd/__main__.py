"""``python -m swarmd``: ``swarmd`` (the daemon, or ``python -m swarmd worker``)."""

import sys

from swarmd.cli.daemon import main

sys.exit(main())
