"""Every Redis key name swarmd uses, in one place.

All keys share the ``swarmd:`` prefix so one Redis can be shared with other
software.  RQ keeps its own ``rq:`` keys for the queues named in
:data:`QUEUES`.
"""

PREFIX = "swarmd:"

#: Stream of submitted objectives; field ``objective`` holds the JSON.
OBJECTIVE_STREAM = PREFIX + "objectives"
#: Consumer group the daemon reads :data:`OBJECTIVE_STREAM` with.
OBJECTIVE_GROUP = "daemon"

#: Stream of worker events (``started``, ``finished``, ``failed``) the daemon persists.
EVENT_STREAM = PREFIX + "events"
EVENT_GROUP = "daemon"

#: Hash of the daemon's heartbeat: pid, host, started_at, ts, counts, spend.
HEARTBEAT = PREFIX + "heartbeat"

#: RQ queue names, highest priority first (RQ workers listen in this order).
QUEUES = ("high", "default", "low")

#: Objective priority → RQ queue.
PRIORITY_QUEUE = {"high": "high", "normal": "default", "low": "low"}


def objective_key(objective_id: str) -> str:
    """Hash with one objective's state (``state``, ``action``, ``result`` JSON, ...)."""
    return f"{PREFIX}objective:{objective_id}"
