"""The learning memory: what swarmd learns from verified outcomes to route and
answer better next time.

Not the objective store — objectives, attempts, the cost ledger and the audit
log live in :mod:`swarmd.store`.  Where each part lives:

* :mod:`~swarmd.memory.records` — verified outcomes (``verified_outcomes``
  in the store): one record per verified answer, source ``teacher``,
  ``human`` or ``audit``; an answer the gate accepted alone is never one;
* :mod:`~swarmd.memory.outcomes` — the teacher hook on the cascade's
  decision (written by the daemon from ``finished`` events) and the value score;
* :mod:`~swarmd.memory.feedback` — ``swarmctl feedback`` (all or nothing);
* :mod:`~swarmd.memory.audit` — calibration audits of free tiers' accepted answers;
* :mod:`~swarmd.memory.stats` — false-accept rate with its Wilson upper bound, coverage;
* :mod:`~swarmd.memory.consolidate` — dedup, value, prune, refit of the gate
  with a risk-bounded threshold (daily in the daemon, ``swarmctl memory consolidate``);
* :mod:`~swarmd.memory.gate` — learned calibrations (every version) and what
  the router reads (:class:`~swarmd.memory.gate.RouterMemory`);
* :mod:`~swarmd.memory.cache` — the answer cache, tier ``MEMORY``;
* :mod:`~swarmd.memory.export` — the fine-tuning dataset;
* :mod:`~swarmd.memory.retrieval`, :mod:`~swarmd.memory.embed`,
  :mod:`swarmd.memory.vectors` — retrieval of similar verified examples
  (embeddings, vector indexes, BM25, hybrid);
* :mod:`~swarmd.memory.traces` — execution traces of agent objectives.
"""
