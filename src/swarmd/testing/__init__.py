"""Support for swarmd's tests and benchmarks, shipped with the package so
``tests/`` and ``bench/`` both import it from here (``bench/`` imports nothing
from ``tests/``).  Nothing here runs in production unless a test asks for it.

* :mod:`swarmd.testing.failpoints` — the one hook production code calls at
  the places a crash-recovery test can make a process die
  (``$SWARMD_FAILPOINT``).
* :mod:`swarmd.testing.governor` — the fixed DNS table, the realistic
  objective workspace and the corpus reader the governor tests and
  ``bench/governor.py`` share.
* :mod:`swarmd.testing.configs` — the shipped config with LOCAL_FAST
  switched to another provider (``echo``: no model loaded).
* :mod:`swarmd.testing.effects` — security measured by effects: actions run
  through the real execution path in a canary-seeded throwaway root
  (``bench/governor_effects.py``, ``bench/redteam.py``).
* :mod:`swarmd.testing.browser` — a headless chromium through selenium
  (the dashboard's tests, ``bench/api.py``).
* :mod:`swarmd.testing.processes` — stopping a swarmd subprocess and
  killing what it left in its data directory (the fault tests and
  ``bench/soak.py``).

The loopback Ollama/Anthropic wire fakes stay in ``tests/fakes``: only tests
use them.
"""
