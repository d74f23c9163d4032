"""The learning memory: what swarmd learns from verified outcomes to route and answer better.

Not the objective store (objectives, attempts, cost ledger, audit log).  Modules:
:mod:`~swarmd.memory.records` (verified outcomes: ``teacher``, ``human`` or ``audit``
records; an answer the gate accepted alone is never one), :mod:`~swarmd.memory.outcomes`
(the teacher hook and the value score), :mod:`~swarmd.memory.feedback` (``swarmctl
feedback``), :mod:`~swarmd.memory.audit` (calibration audits),
:mod:`~swarmd.memory.stats` (false-accept rate, Wilson bound, coverage),
:mod:`~swarmd.memory.consolidate` (dedup, value, prune, refit of the gate),
:mod:`~swarmd.memory.gate` (learned calibrations and what the router reads),
:mod:`~swarmd.memory.cache` (the answer cache, tier ``MEMORY``),
:mod:`~swarmd.memory.export` (the fine-tuning dataset), and retrieval of similar verified
examples (:mod:`~swarmd.memory.retrieval`, :mod:`~swarmd.memory.embed`,
:mod:`swarmd.memory.vectors`, :mod:`~swarmd.memory.bm25`).
"""
