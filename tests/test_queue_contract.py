"""The daemon<->worker contract (swarmd.queue): each event kind round-trips
through its stream fields, a malformed entry is refused naming the entry and
the field, and what a worker writes to the real event stream reads back."""

from __future__ import annotations

import json

import pytest

from swarmd import queue as Q
from swarmd.errors import BadInput

AUDIT_ROW = {"objective_id": "o-1", "tool": "shell", "decision": "allow", "rule": "r", "reason": "why"}

EVENTS = [
    Q.Started("o-1", worker="host:12", ts=1700000000.5),
    Q.Started("o-2"),
    Q.Finished("o-1", state="done", result={"answer": "fix", "tier": "local_fast", "cost_usd": 0.0},
               attempts=[{"tier": "local_fast", "outcome": "accepted"}], action="classify", ts=2.0,
               worker="host:12"),
    Q.Finished("o-3", state="awaiting_approval", result={"status": "awaiting_approval"}, attempts=[],
               action="agent", ts=3, worker="w", audit=[AUDIT_ROW], trace={"follow": {"id": "t", "version": 1,
                                                                                       "ok": True}}),
    Q.Failed("o-4", reason="AbandonedJobError", ts=4.0),
    Q.Resolved("o-5", resolution="approve", by="alice@host", ts=5.0, audit=[AUDIT_ROW]),
]


def _bytes(fields: dict[str, str]) -> dict[bytes, bytes]:
    """Stream fields as redis-py returns them (bytes)."""
    return {k.encode(): v.encode() for k, v in fields.items()}


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{e.kind}-{e.objective_id}")
def test_each_event_round_trips_through_its_stream_fields(event):
    fields = event.to_fields()
    assert set(fields) == {"kind", "id", "payload"}
    assert fields["kind"] == event.kind and fields["id"] == event.objective_id
    payload = json.loads(fields["payload"])
    assert None not in payload.values() and "objective_id" not in payload
    assert type(event).from_fields(fields, "1-0") == event
    assert Q.parse_event(_bytes(fields), "1-0") == event          # bytes, as read from Redis
    assert event.as_tuple("1-0") == ("1-0", event.kind, event.objective_id, payload)


def test_every_kind_has_its_class_and_the_kinds_are_the_documented_four():
    assert Q.EVENT_KINDS == ("started", "finished", "failed", "resolved")
    assert {kind: cls.kind for kind, cls in Q.EVENTS.items()} == {k: k for k in Q.EVENT_KINDS}


MALFORMED = [
    # (fields, the field the error must name)
    ({"id": "o", "payload": "{}"}, "'kind' is missing"),
    ({"kind": "exploded", "id": "o", "payload": "{}"}, "'kind'"),
    ({"kind": "started", "payload": "{}"}, "'id'"),
    ({"kind": "started", "id": "", "payload": "{}"}, "'id'"),
    ({"kind": "started", "id": "o"}, "'payload'"),
    ({"kind": "started", "id": "o", "payload": "{oops"}, "'payload'"),
    ({"kind": "started", "id": "o", "payload": "[1, 2]"}, "'payload'"),
    ({"kind": "started", "id": "o", "payload": json.dumps({"ts": "yesterday"})}, "'ts'"),
    ({"kind": "started", "id": "o", "payload": json.dumps({"worker": 7})}, "'worker'"),
    ({"kind": "finished", "id": "o", "payload": json.dumps({"result": {}})}, "'state'"),
    ({"kind": "finished", "id": "o", "payload": json.dumps({"state": "melted"})}, "'state'"),
    ({"kind": "finished", "id": "o", "payload": json.dumps({"state": "done", "attempts": {"a": 1}})}, "'attempts'"),
    ({"kind": "finished", "id": "o", "payload": json.dumps({"state": "done", "result": "fix"})}, "'result'"),
    ({"kind": "failed", "id": "o", "payload": json.dumps({"reason": ["x"]})}, "'reason'"),
    ({"kind": "resolved", "id": "o", "payload": json.dumps({"by": "alice"})}, "'resolution'"),
    ({"kind": "resolved", "id": "o", "payload": json.dumps({"resolution": "approve", "audit": "row"})}, "'by'"),
]


@pytest.mark.parametrize("fields,field", MALFORMED, ids=[f"{i}-{f}" for i, (_x, f) in enumerate(MALFORMED)])
def test_a_malformed_entry_is_refused_naming_the_entry_and_the_field(fields, field):
    with pytest.raises(BadInput) as err:
        Q.parse_event(_bytes(fields), "1700000000000-7")
    assert "1700000000000-7" in str(err.value) and field in str(err.value), str(err.value)


def test_from_fields_of_one_kind_refuses_another_kind():
    with pytest.raises(BadInput, match="'kind'"):
        Q.Finished.from_fields(Q.Started("o").to_fields(), "2-0")


def test_unknown_payload_keys_are_ignored():
    fields = {"kind": "started", "id": "o", "payload": json.dumps({"worker": "w", "ts": 1.0, "later": "field"})}
    assert Q.parse_event(fields) == Q.Started("o", worker="w", ts=1.0)


def test_emit_writes_what_parse_event_reads_and_a_final_finished_sets_the_marker(redis_conn):
    started, final = Q.Started("o-9", worker="w", ts=1.0), Q.Finished("o-9", state="unresolved", ts=2.0)
    Q.emit(redis_conn, started)
    assert Q.reported_final(redis_conn, "o-9") is None
    Q.emit(redis_conn, final)
    assert Q.reported_final(redis_conn, "o-9") == "unresolved"
    read = [Q.parse_event(f, i.decode()) for i, f in redis_conn.xrange(Q.EVENT_STREAM)]
    assert read == [started, final]
    ttl = redis_conn.ttl(Q.finished_key("o-9"))
    assert 0 < ttl <= Q.FINISHED_MARK_TTL_S


def test_start_appends_started_only_while_no_final_state_was_reported(redis_conn):
    assert Q.start(redis_conn, Q.Started("o-10", worker="w", ts=1.0)) is None
    Q.emit(redis_conn, Q.Finished("o-10", state="done"))
    assert Q.start(redis_conn, Q.Started("o-10", worker="w2", ts=3.0)) == "done"
    kinds = [Q.parse_event(f).kind for _i, f in redis_conn.xrange(Q.EVENT_STREAM)]
    assert kinds == ["started", "finished"]       # the second start wrote nothing


def test_job_ids_and_queues():
    assert Q.job_id("abc", 0) == "abc" and Q.job_id("abc", 2) == "abc__r2"
    assert Q.JOB_FUNC in Q.JOB_FUNCS and Q.JOB_FUNC == "swarmd.workers.jobs.run_objective"   # stored in Redis
    assert set(Q.PRIORITY_QUEUE.values()) == set(Q.QUEUES)
    assert Q.worker_queues()[1:] == list(Q.QUEUES) and Q.worker_queues()[0] == Q.resume_queue(Q.site())


def test_the_daemon_and_the_cli_reach_workers_only_through_the_contract():
    """daemon/ imports nothing of workers/ (TYPE_CHECKING imports included); cli/
    imports only the worker command's entry point (swarmd.workers.main)."""
    from tests.importgraph import graph

    edges, _lazy = graph(type_checking=True)
    into_workers = {(m, t) for m, targets in edges.items() for t in targets
                    if t.startswith("swarmd.workers") and m.startswith(("swarmd.daemon", "swarmd.cli"))}
    assert into_workers == {("swarmd.cli.daemon", "swarmd.workers.main")}
    assert "swarmd.queue" in edges["swarmd.workers.jobs"] and "swarmd.queue" in edges["swarmd.daemon.events"]
