"""Every Redis key name swarmd uses, in one place.

All keys share the ``swarmd:`` prefix so one Redis can be shared with other
software.  RQ keeps its own ``rq:`` keys for the queues named in
:data:`swarmd.queue.QUEUES`; the worker event stream and the other names of the
daemon<->worker contract are in :mod:`swarmd.queue`.
"""

PREFIX = "swarmd:"

#: Stream of submitted objectives; field ``objective`` holds the JSON.
OBJECTIVE_STREAM = PREFIX + "objectives"
#: Consumer group the daemon reads (and acknowledges) :data:`OBJECTIVE_STREAM` with.
OBJECTIVE_GROUP = "daemon"

#: The worker event stream and its consumer group: :mod:`swarmd.queue`.

#: Hash of the daemon's heartbeat: pid, host, started_at, ts, counts, spend.
HEARTBEAT = PREFIX + "heartbeat"

#: Hash of counters the daemon keeps (integers): ``malformed_objectives`` and
#: ``malformed_events``, stream entries skipped because they can never be handled
#: (an objective entry that fails validation but names a well-formed id is not
#: counted: it is stored as a ``failed`` objective).
STATS = PREFIX + "stats"

#: Budgets (:mod:`swarmd.costs.budgets`).  Spend hashes have the fields
#: ``spent`` (settled) and ``reserved`` (held for calls in flight), integers in
#: nano-USD (1e-9 USD).  Periods are UTC.
#: Sorted set of reservations in flight: member a JSON record (id, amount,
#: budget keys), score the unix time after which a reservation whose worker
#: never settled it is released.
BUDGET_LEASES = PREFIX + "budget:leases"
#: Seconds a day's spend hash outlives its day (a month's: :data:`BUDGET_MONTH_GRACE_S`).
BUDGET_DAY_GRACE_S = 2 * 86400
BUDGET_MONTH_GRACE_S = 7 * 86400
#: Seconds an objective's spend hash lives after its last reservation.
BUDGET_OBJECTIVE_TTL_S = 30 * 86400


def budget_day_key(day: str) -> str:
    """Spend hash of one UTC day, ``day`` as ``YYYY-MM-DD``."""
    return f"{PREFIX}budget:day:{day}"


def budget_month_key(month: str) -> str:
    """Spend hash of one UTC month, ``month`` as ``YYYY-MM``."""
    return f"{PREFIX}budget:month:{month}"


def budget_objective_key(objective_id: str) -> str:
    """Spend hash of one objective (its ``max_cost_usd`` cap)."""
    return f"{PREFIX}budget:objective:{objective_id}"


def objective_key(objective_id: str) -> str:
    """Hash with one objective's state (``state``, ``action``, ``result`` JSON, ...)."""
    return f"{PREFIX}objective:{objective_id}"


#: Sorted set of parked objectives (state ``awaiting_approval``): member the
#: objective id, score the unix time it was parked.  ``swarmctl approvals``
#: lists it; the daemon's approval-timeout job scans it by score.
PARKED = PREFIX + "parked"


def park_key(objective_id: str) -> str:
    """String (JSON) with one parked objective: the objective, the proposed
    action and the governor's decision, the agent loop state, and once decided
    the ``resolution`` (see :mod:`swarmd.agent.approvals`)."""
    return f"{PREFIX}park:{objective_id}"


#: List of calibration audits waiting for the daemon (:mod:`swarmd.memory.audit`):
#: each item JSON ``{"record": <verified outcome>, "attempt": <the paid call>}``,
#: pushed by a worker after the objective's result, drained by the daemon.
MEMORY_AUDITS = PREFIX + "memory:audits"
