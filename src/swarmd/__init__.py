"""swarmd: run a swarm of LLM agents cheaply and safely.

Subpackages: :mod:`swarmd.router` (tiers, providers, quality gate),
:mod:`swarmd.costs` (pricing, cost ledger, budgets, reports, simulation),
:mod:`swarmd.daemon`, :mod:`swarmd.workers`, :mod:`swarmd.governor`,
:mod:`swarmd.store` (SQLite: objectives, ledger, audit log; schema
migrations), :mod:`swarmd.memory` (the learning memory); the command line
is :mod:`swarmd.cli` (``swarmctl``).
"""

__version__ = "0.1.0"
