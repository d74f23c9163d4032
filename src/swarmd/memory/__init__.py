"""The learning memory: what swarmd learns from verified outcomes to route and
answer better next time.

Not the objective store — objectives, attempts, the cost ledger and the audit
log live in :mod:`swarmd.store`.
"""
