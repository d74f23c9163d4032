"""swarmd: run a swarm of LLM agents cheaply and safely.

Subpackages: :mod:`swarmd.router` (tiers, providers, quality gate, ledger),
:mod:`swarmd.daemon`, :mod:`swarmd.workers`, :mod:`swarmd.governor`,
:mod:`swarmd.memory`; the command line is :mod:`swarmd.cli` (``swarmctl``).
"""

__version__ = "0.1.0"
