"""Support for swarmd's tests and benchmarks, shipped with the package so ``tests/`` and
``bench/`` both import it (``bench/`` imports nothing from ``tests/``).  Nothing here runs in
production unless a test asks for it.

* :mod:`~swarmd.testing.failpoints` — the hook where a crash-recovery test makes a process die;
* :mod:`~swarmd.testing.governor` — the governor tests' DNS table, workspace and corpus reader;
* :mod:`~swarmd.testing.configs` — the shipped config with another LOCAL_FAST provider;
* :mod:`~swarmd.testing.effects`, :mod:`~swarmd.testing.redteam` — security measured by
  effects in a canary-seeded throwaway root;
* :mod:`~swarmd.testing.browser` — a headless chromium through selenium (dashboard tests, bench);
* :mod:`~swarmd.testing.processes` — stopping a swarmd subprocess and what it left.

The loopback Ollama/Anthropic fakes stay in ``tests/fakes``: only tests use them.
"""
