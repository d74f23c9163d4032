"""Calibration audits: a free tier's accepted answer also asked of the next paid tier.

With probability ``memory.audit_rate`` (drawn from a hash of the objective id,
:func:`drawn`), an answer a free tier gave and the gate accepted is asked again of the
first priced model after that tier (:meth:`swarmd.router.Router.ask_paid_after`), within
the budgets, **after** the worker reported the result.  A paid answer that passes the
gate's format checks becomes an ``audit`` record judging the free answer; the worker pushes
it to :data:`swarmd.constants.MEMORY_AUDITS` and the daemon writes it with the paid call's
ledger row in one transaction (:func:`drain_audits`).

Audits are what measures the gate's false-accept rate: teacher records only ever judge
answers the gate rejected.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict

from loguru import logger

from swarmd import constants as K
from swarmd.costs.ledger import LedgerRow, insert_row
from swarmd.memory.outcomes import local_fields
from swarmd.memory.records import Memory, RecordError, Verified
from swarmd.costs.ledger import MEMORY_TIER


def drawn(objective_id: str, rate: float) -> bool:
    """Whether objective ``objective_id`` is audited at ``rate``: its CRC-32
    as a fraction of 2³² is below ``rate``.  A uniform draw that is the same
    every time for one id, so a retried job audits the same way and tests are
    reproducible."""
    return zlib.crc32(objective_id.encode()) / 2 ** 32 < rate


def audit(router, objective: dict, result, rate: float) -> tuple[Verified, object] | None:
    """Audit one routed objective with probability ``rate`` (:func:`drawn`):
    ``(audit record, the paid Attempt)``, or ``None`` (not drawn, not a free
    tier's accepted answer, no priced model, refused by a budget, or an
    unusable paid answer).  ``result``: the objective's
    :class:`~swarmd.router.RouteResult`.  Never raises for a model or budget
    failure (logged)."""
    if result.status != "accepted" or not result.attempts or not drawn(objective["id"], rate):
        return None
    local = result.attempts[-1]
    free = any(m.model == local.model and m.is_free for m in router.config.tiers.get(local.tier, ()))
    if local.tier == MEMORY_TIER or not free:
        return None
    labels = tuple(objective.get("labels") or ())
    try:
        paid = router.ask_paid_after(objective["action"], objective["input"], labels, local.tier,
                                     objective["id"], objective.get("max_cost_usd"))
    except Exception:
        logger.exception("audit of {} failed", objective["id"])
        return None
    if paid is None or paid.answer is None or paid.error is not None or (labels and paid.answer not in labels):
        return None
    record = Verified(objective["action"], labels, objective["input"], paid.answer, "audit", verifier=paid.model,
                      objective_id=objective["id"], **local_fields(asdict(local)))
    logger.info("audit of {}: {} said {!r}, {} said {!r}", objective["id"], local.model, local.answer,
                paid.model, paid.answer)
    return record, paid


def maybe_audit(router, redis, objective: dict, result, rate: float) -> Verified | None:
    """The worker's audit: :func:`audit`, then the record and the paid call
    pushed to :data:`~swarmd.constants.MEMORY_AUDITS` for the daemon; returns
    the record or ``None``."""
    audited = audit(router, objective, result, rate)
    if audited is None:
        return None
    record, paid = audited
    redis.rpush(K.MEMORY_AUDITS, json.dumps({"record": asdict(record), "attempt": asdict(paid),
                                             "action": objective["action"]}))
    return record


def drain_audits(memory: Memory, redis, batch: int = 200) -> int:
    """Write the waiting audits (records and their paid calls' ledger rows,
    in one transaction) and remove them from Redis; returns how many records
    were new.  Idempotent: an audit already written (same objective) is not
    written again, so a crash between the write and the trim loses nothing
    and doubles nothing.  A malformed item is logged and dropped."""
    raw = redis.lrange(K.MEMORY_AUDITS, 0, batch - 1)
    if not raw:
        return 0
    records, rows = [], []
    for item in raw:
        try:
            data = json.loads(item)
            record = Verified(**{**data["record"], "labels": tuple(data["record"]["labels"])})
            attempt = data["attempt"]
            rows.append(LedgerRow(action=data["action"], objective_id=record.objective_id, **{k: attempt[k] for k in (
                "tier", "provider", "model", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "confidence",
                "outcome", "error", "ts")}))
            records.append(record)
        except (ValueError, KeyError, TypeError, RecordError) as exc:
            logger.error("memory: dropping a malformed audit item: {}", exc)
    added = memory.add_many(records, on_added=lambda i: insert_row(memory.conn, rows[i]))
    redis.ltrim(K.MEMORY_AUDITS, len(raw), -1)
    return sum(added)
