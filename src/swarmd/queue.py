"""The daemon<->worker contract: queues, jobs and events.

* Queues: RQ queue names (:data:`QUEUES`, :data:`PRIORITY_QUEUE`,
  :func:`resume_queue`), stored as JSON (:data:`JOB_SERIALIZER`).
* Jobs: the only function a worker runs (:data:`JOB_FUNC`, one argument: the
  objective dict) and its job ids (:func:`job_id`).
* Events: what a worker tells the daemon, one :data:`EVENT_STREAM` entry each:
  :class:`Started`, :class:`Finished`, :class:`Failed`, :class:`Resolved`,
  each with ``to_fields()``/``from_fields()`` (``{"kind", "id", "payload"
  (JSON)}``); :func:`parse_event` reads any of them, raising
  :class:`~swarmd.errors.BadInput` naming the entry and field.
* Reporting: :func:`emit` appends an event (a final ``finished`` together with
  :func:`finished_key`), :func:`start` checks that marker and appends
  ``started`` atomically, :func:`reported_final` reads the marker.
* Processes: :data:`SUPERVISOR_PID_ENV`, the daemon pid a supervised worker watches.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import MISSING, dataclass, fields
from typing import Any, Callable, ClassVar

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq import Queue
from rq.serializers import JSONSerializer

from swarmd.constants import PREFIX
from swarmd.errors import BadInput
from swarmd.objectives import FINAL_STATES, STATES

# ---------------------------------------------------------------- queues and streams
#: RQ queue names, highest priority first (RQ workers listen in this order).
QUEUES = ("high", "default", "low")
#: Objective priority -> RQ queue.
PRIORITY_QUEUE = {"high": "high", "normal": "default", "low": "low"}

#: Stream of worker events (:data:`EVENTS`) the daemon persists.
EVENT_STREAM = PREFIX + "events"
#: Consumer group the daemon reads (and acknowledges) :data:`EVENT_STREAM` with.
EVENT_GROUP = "daemon-events"

#: Seconds the "reported final" marker (:func:`finished_key`) lives: longer than any retry.
FINISHED_MARK_TTL_S = 7 * 86400

#: Environment variable carrying the supervising daemon's pid to each worker it starts
#: (:class:`swarmd.daemon.supervisor.Supervisor`): the worker asks the kernel for SIGTERM
#: when that process dies (:func:`swarmd.workers.main.end_with_supervisor`), so a SIGKILLed
#: daemon leaves no orphan workers behind outside systemd (under systemd the cgroup ends them anyway).
SUPERVISOR_PID_ENV = "SWARMD_SUPERVISOR_PID"


def finished_key(objective_id: str) -> str:
    """String set (in the same transaction) when a worker reports an objective
    final: a job run again after its worker died past that point sees it and
    does not run the objective a second time (:func:`swarmd.workers.jobs.run_objective`)."""
    return f"{PREFIX}finished:{objective_id}"


def resume_queue(site_name: str) -> str:
    """RQ queue of the resumed runs of objectives parked on ``site_name`` (see
    :func:`site`): only that machine's workers listen on it, because only that
    machine holds the objective's workspace."""
    return f"resume:{site_name}"


#: Hash: worker name -> JSON of its router's :meth:`swarmd.router.Router.tier_state` (models
#: built/loaded, models cooling down until when), written by the worker when it changes
#: (:func:`publish_tier_state`) and read for tier health (:mod:`swarmd.daemon.health`).
WORKER_TIERS = PREFIX + "worker_tiers"


def publish_tier_state(conn: Redis, worker: str, state: dict) -> None:
    """Write ``worker``'s tier state (:data:`WORKER_TIERS`; ``state``: ``{"built", "cooling"}``)."""
    conn.hset(WORKER_TIERS, worker, json.dumps(state))


def worker_tier_states(conn: Redis) -> dict[str, dict]:
    """``{worker name: tier state}`` as published (:func:`publish_tier_state`); entries
    that are not JSON objects are left out."""
    out = {}
    for name, raw in conn.hgetall(WORKER_TIERS).items():
        try:
            state = json.loads(raw)
        except ValueError:
            continue
        if isinstance(state, dict):
            out[_text(name)] = state
    return out


# ---------------------------------------------------------------- jobs
#: The job function of every swarmd job, as stored in Redis (do not rename:
#: jobs already queued name it).
JOB_FUNC = "swarmd.workers.jobs.run_objective"
#: The only job functions a swarmd worker runs (:class:`swarmd.workers.context.ContextJob`
#: refuses any other): whoever can write to the Redis can enqueue a job naming any
#: importable function, and RQ would call it.
JOB_FUNCS = frozenset({JOB_FUNC})
#: How RQ stores jobs (arguments, results) in Redis: JSON, not RQ's default pickle,
#: which runs code when a job is loaded. Every Queue, worker and Job.fetch uses it.
JOB_SERIALIZER = JSONSerializer


def queue(name: str, redis: Redis) -> Queue:
    """The RQ queue ``name`` with swarmd's job serializer (:data:`JOB_SERIALIZER`)."""
    return Queue(name, connection=redis, serializer=JOB_SERIALIZER)


def job_id(objective_id: str, run: int) -> str:
    """RQ job id of run ``run`` of an objective: the id itself for run 0, else ``<id>__r<run>``
    (objective ids cannot contain ``_``, so this never collides)."""
    return objective_id if run == 0 else f"{objective_id}__r{run}"


def site() -> str:
    """The machine whose disk holds this worker's objective workspaces:
    ``$SWARMD_SITE`` when set (e.g. workers on several hosts that share one
    data directory over NFS can share a site), else the host name."""
    return os.environ.get("SWARMD_SITE") or socket.gethostname()


def worker_queues() -> list[str]:
    """Queues a worker listens on, in order: resumed runs of objectives parked
    on this site first, then :data:`QUEUES` by priority."""
    return [resume_queue(site()), *QUEUES]


def swarmd_queues(redis: Redis) -> list[Queue]:
    """Every RQ queue swarmd enqueues on: :data:`QUEUES` and each
    ``resume:<site>`` queue RQ knows of (registered at its first job)."""
    prefix = resume_queue("")
    return [queue(name, redis) for name in QUEUES] + \
        [q for q in Queue.all(connection=redis, serializer=JOB_SERIALIZER) if q.name.startswith(prefix)]


def queue_depths(redis: Redis) -> dict[str, int]:
    """Jobs waiting per RQ queue: every queue of :data:`QUEUES` (0 included),
    then each ``resume:<site>`` queue that has jobs waiting."""
    depths = {q.name: q.count for q in swarmd_queues(redis)}
    return {name: n for name, n in depths.items() if n or name in QUEUES}


# ---------------------------------------------------------------- events
def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


#: What each payload field may hold (``None``/absent is always allowed, except where required).
_TYPES: dict[str, tuple[type, ...]] = {
    "worker": (str,), "ts": (int, float), "state": (str,), "result": (dict,), "attempts": (list,),
    "action": (str,), "audit": (list,), "trace": (dict,), "reason": (str,), "resolution": (str,),
    "by": (str,), "skipped": (list,),
}


class _Event:
    """Shared encoding of the event dataclasses: ``objective_id`` is the entry's
    ``id``; every other field goes into the JSON ``payload`` (``None`` left out)."""

    kind: ClassVar[str]
    objective_id: str

    def payload(self) -> dict[str, Any]:
        """The event's payload dict (what the store persists), ``None`` fields left out."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "objective_id" and getattr(self, f.name) is not None}

    def to_fields(self) -> dict[str, str]:
        """The stream entry: ``{"kind", "id", "payload"}`` (payload as JSON)."""
        return {"kind": self.kind, "id": self.objective_id, "payload": json.dumps(self.payload())}

    def as_tuple(self, event_id: str) -> tuple[str, str, str, dict]:
        """``(event_id, kind, objective_id, payload)``, as the daemon persists events."""
        return event_id, self.kind, self.objective_id, self.payload()

    @classmethod
    def from_fields(cls, entry_fields: dict, entry: str = "?"):
        """Read one stream entry of this kind (keys and values bytes or str).
        Unknown payload keys are ignored.  Raises :class:`BadInput` naming
        ``entry`` (the stream entry id) and the field that is missing or wrong."""
        got = {_text(k): v for k, v in entry_fields.items()}
        kind = _text(got.get("kind"))
        if kind != cls.kind:
            raise BadInput(f"event-stream entry {entry}: field 'kind' is {kind!r}, expected {cls.kind!r}")
        oid = _text(got.get("id"))
        if not isinstance(oid, str) or not oid:
            raise BadInput(f"event-stream entry {entry}: field 'id' is missing or empty")
        if "payload" not in got:
            raise BadInput(f"event-stream entry {entry}: field 'payload' is missing")
        try:
            payload = json.loads(got["payload"])
        except (TypeError, ValueError) as exc:
            raise BadInput(f"event-stream entry {entry}: field 'payload' is not JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise BadInput(f"event-stream entry {entry}: field 'payload' is a JSON "
                           f"{type(payload).__name__}, not an object")
        return cls.from_payload(oid, payload, entry)

    @classmethod
    def from_payload(cls, objective_id: str, payload: dict, entry: str = "?"):
        """The event from its objective id and payload dict (see :meth:`from_fields`)."""
        values = {}
        for f in fields(cls):
            if f.name == "objective_id":
                continue
            value = payload.get(f.name)
            types = _TYPES[f.name]
            if value is None:
                if f.default is MISSING:   # a required field
                    raise BadInput(f"event-stream entry {entry}: {cls.kind} payload field {f.name!r} is missing")
            elif not isinstance(value, types) or isinstance(value, bool):
                raise BadInput(f"event-stream entry {entry}: {cls.kind} payload field {f.name!r} is a "
                               f"{type(value).__name__}, expected {' or '.join(t.__name__ for t in types)}")
            values[f.name] = value
        event = cls(objective_id=objective_id, **values)
        event.check(entry)
        return event

    def check(self, entry: str) -> None:
        """Checks beyond the field types (none by default)."""


@dataclass(frozen=True)
class Started(_Event):
    """A worker began running the objective (``ts``: unix seconds)."""

    kind: ClassVar[str] = "started"
    objective_id: str
    worker: str | None = None
    ts: float | None = None


@dataclass(frozen=True)
class Finished(_Event):
    """A worker ended a run: ``state`` (one of :data:`swarmd.objectives.STATES`,
    ``awaiting_approval`` when parked), the route result and attempts (ledger
    data), the governor's audit rows and the execution-trace update of an
    ``agent`` objective."""

    kind: ClassVar[str] = "finished"
    objective_id: str
    state: str
    result: dict | None = None
    attempts: list | None = None
    action: str | None = None
    ts: float | None = None
    worker: str | None = None
    audit: list | None = None
    trace: dict | None = None
    #: the models the router passed over, and why (:func:`swarmd.router.router.skip_record` dicts)
    skipped: list | None = None

    def check(self, entry: str) -> None:
        if self.state not in STATES:
            raise BadInput(f"event-stream entry {entry}: finished payload field 'state' is {self.state!r}, "
                           f"expected one of {', '.join(STATES)}")


@dataclass(frozen=True)
class Failed(_Event):
    """The objective failed outside a worker's report (RQ gave up on its job,
    or admission refused it): ``reason``."""

    kind: ClassVar[str] = "failed"
    objective_id: str
    reason: str | None = None
    action: str | None = None
    ts: float | None = None
    audit: list | None = None


@dataclass(frozen=True)
class Resolved(_Event):
    """A parked objective was decided (``resolution``: approve, reject or
    timeout, ``by`` whom) and queued again; ``audit``: the decision's row."""

    kind: ClassVar[str] = "resolved"
    objective_id: str
    resolution: str
    by: str
    ts: float | None = None
    audit: list | None = None


Event = Started | Finished | Failed | Resolved
#: Event classes by ``kind``.
EVENTS: dict[str, type[_Event]] = {cls.kind: cls for cls in (Started, Finished, Failed, Resolved)}
#: Kinds of event-stream entries.
EVENT_KINDS = tuple(EVENTS)


def parse_event(entry_fields: dict, entry: str = "?") -> Event:
    """The event of one :data:`EVENT_STREAM` entry (``entry``: its id, for
    errors).  Raises :class:`BadInput` naming the entry and the field for an
    unknown kind or a malformed field."""
    kind = _text({_text(k): v for k, v in entry_fields.items()}.get("kind"))
    if kind is None:
        raise BadInput(f"event-stream entry {entry}: field 'kind' is missing")
    if kind not in EVENTS:
        raise BadInput(f"event-stream entry {entry}: field 'kind' is {kind!r}, expected one of "
                       f"{', '.join(EVENT_KINDS)}")
    return EVENTS[kind].from_fields(entry_fields, entry)


def emit(connection, event: Event) -> None:
    """Append ``event`` to :data:`EVENT_STREAM` (``connection`` may be a
    pipeline).  A :class:`Finished` with a final state also sets the
    objective's :func:`finished_key`, in one transaction with the event."""
    entry = event.to_fields()
    if not isinstance(event, Finished) or event.state not in FINAL_STATES:
        connection.xadd(EVENT_STREAM, entry)
        return
    pipe = connection if isinstance(connection, Pipeline) else connection.pipeline()
    pipe.xadd(EVENT_STREAM, entry)
    pipe.set(finished_key(event.objective_id), event.state, ex=FINISHED_MARK_TTL_S)
    if pipe is not connection:
        pipe.execute()


def reported_final(connection, objective_id: str) -> str | None:
    """The final state a worker already reported for this objective, or ``None``."""
    return _text(connection.get(finished_key(objective_id)))


def stop_check(connection, objective_id: str) -> Callable[[], bool]:
    """The "stop now?" callable of a running objective: ``True`` once a final
    state was reported for it (:func:`reported_final`; a cancel sets that marker
    to ``cancelled``).  One Redis GET per call (well under a millisecond on
    loopback), asked between steps and escalations, never during one."""
    return lambda: reported_final(connection, objective_id) is not None


# KEYS: the objective's finished marker, the event stream; ARGV: objective id, started payload (JSON).
# Returns the marker's value (the final state reported already), or nil after appending ``started``.
_START_LUA = b"""
local done = redis.call('GET', KEYS[1])
if done then return done end
redis.call('XADD', KEYS[2], '*', 'kind', 'started', 'id', ARGV[1], 'payload', ARGV[2])
return false
"""
_START = Script(None, _START_LUA)   # the client is given per call: the worker's connection


def start(connection, event: Started) -> str | None:
    """:func:`reported_final` and, only when that is ``None``, ``event`` in one
    round trip: a Lua script, so atomic.  Returns the final state reported
    already (then nothing is written), or ``None`` once ``started`` is appended."""
    entry = event.to_fields()
    return _text(_START(keys=[finished_key(event.objective_id), EVENT_STREAM],
                        args=[event.objective_id, entry["payload"]], client=connection))
