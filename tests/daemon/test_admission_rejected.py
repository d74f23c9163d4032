"""An objective rejected at admission ends visibly: it is stored ``failed``
with a reason and its Redis state hash says so, so ``swarmctl submit --wait``,
``show`` and ``status`` see it end (``status`` counts it failed, not among the
malformed stream entries), and nothing runs it.  It stayed ``submitted`` for ever
when the daemon's validation rejected it (its config changed since the
submit, or an old client wrote the stream), and when the daemon died between
storing an objective the policy refuses and refusing it.

Real redis-server; a real ``swarmd --workers 1`` process (echo provider), or
the daemon in process for the crash window."""

from __future__ import annotations

import json

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.daemon.views import status_data
from swarmd.objectives import mirror_state, validate
from swarmd.daemon.store import Store
from tests.daemon.helpers import redis_state
from tests.faults.helpers import Swarmd, echo_config, rows, swarmctl, write_jsonl



def test_objectives_the_daemon_rejects_end_failed_with_the_reason(tmp_path, redis_url, redis_conn):
    submit_config = echo_config(tmp_path)                      # what swarmctl checked: 32768 characters
    daemon_dir = tmp_path / "daemon"
    daemon_dir.mkdir()
    daemon_config = echo_config(daemon_dir, limit=("max_input_chars: 32768", "max_input_chars: 100"))
    daemon = Swarmd(tmp_path, daemon_config, workers=1, redis_url=redis_url)
    try:
        daemon.start()
        # an old client: its own "submitted" hash, then an entry the daemon's validation rejects
        mirror_state(redis_conn, "old-1", {"state": "submitted", "action": "classify"}, 60)
        redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(
            {"id": "old-1", "action": "classify", "input": "fix crash", "labels": ["feat"]})})
        # the real submit path, checked against a config allowing longer input than the daemon's
        batch = write_jsonl(tmp_path / "long.jsonl", [
            {"id": "long-1", "action": "classify", "input": "x" * 200, "labels": ["feat", "fix"]}, *rows("ok", 1)])
        done = swarmctl("--config", str(submit_config), "submit", "--file", str(batch), "--wait",
                        "--timeout", "20", redis_url=redis_url, data_dir=daemon.data)
        # it ended (not timed out) with one objective failed: exit 1 (swarmd.errors.EXIT_RULE)
        assert done.returncode == 1 and "timed out" not in done.stderr, done.stderr
        assert "done: 1" in done.stdout and "failed: 1" in done.stdout

        long_state = redis_state(redis_conn, "long-1")
        assert long_state["state"] == "failed"
        assert long_state["reason"].startswith("rejected: objective: input: expected at most 100 characters "
                                               "(daemon.max_input_chars), found 200 characters")
        assert json.loads(long_state["result"]) == {"status": "failed", "reason": long_state["reason"]}
        old_state = redis_state(redis_conn, "old-1")          # read after the batch above: admitted before it
        assert old_state["state"] == "failed" and "labels: expected at least two labels" in old_state["reason"]
        assert redis_conn.ttl(K.objective_key("old-1")) > 0       # final: expires like any final state

        show = swarmctl("--config", str(daemon_config), "show", "long-1", redis_url=redis_url, data_dir=daemon.data)
        assert show.returncode == 1, show.stderr                 # failed: no accepted answer
        assert "long-1 classify: failed" in show.stdout and "rejected: objective: input" in show.stdout

        # stored failed with the reason (status counts them there), and nothing ran them: no job, no event
        store = Store(daemon.data / "memory.db")
        try:
            for oid, state in (("long-1", long_state), ("old-1", old_state)):
                rec = store.get(oid)
                assert (rec["state"], rec["reason"], rec["attempts"]) == ("failed", state["reason"], [])
            assert store.get("long-1")["action"] == "classify" and store.get("long-1")["input"] == "x" * 100
            assert store.get("ok-0")["state"] == "done"
        finally:
            store.close()
        assert not {b"long-1", b"old-1"} & {f[b"id"] for _i, f in redis_conn.xrange(Q.EVENT_STREAM)}
        assert not redis_conn.exists("rq:job:long-1", "rq:job:old-1")
        assert daemon.log.count("rejected at admission (skipped, acknowledged)") == 2
    finally:
        daemon.close()


def test_rejected_entry_repeating_a_known_id_leaves_that_objective_alone(daemon, redis_conn):
    good = validate({"id": "known-1", "action": "classify", "input": "x", "labels": "feat,fix"}, daemon.config)
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(good.to_dict())})
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps({"id": "known-1", "action": "nope",
                                                                  "input": "x"})})
    daemon.handle(daemon.read_streams(block_ms=100))
    assert redis_state(redis_conn, "known-1")["state"] == "queued"
    assert daemon.store.get("known-1")["state"] == "queued"


def test_status_counts_rejected_objectives_as_failed_and_only_the_rest_as_malformed(daemon, redis_conn):
    """An entry validation rejects that names a well-formed id is a failed
    objective (it was counted under ``malformed`` and not as failed); an entry
    that is no objective (not JSON, no usable id, another objective's id) is
    only counted; each entry is counted once."""
    known = validate({"id": "known-2", "action": "classify", "input": "x", "labels": "feat,fix"}, daemon.config)
    for raw in [{"id": "bad-action-1", "action": "no_such_action", "input": "x", "tags": ["t"]},
                {"id": "one-label-1", "action": "classify", "input": "x", "labels": ["feat"]},
                known.to_dict(), {"id": "known-2", "action": "nope", "input": "x"},     # the known one stands
                {"id": "not an id!", "action": "nope"}, {"action": "nope", "input": "x"}]:
        redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(raw)})
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": "{not json"})
    daemon.handle(daemon.read_streams(block_ms=100))
    daemon.heartbeat()

    data = status_data(redis_conn)
    assert data["objectives"] == {"queued": 1, "running": 0, "awaiting_approval": 0, "done": 0, "failed": 2,
                                  "unresolved": 0, "cancelled": 0}
    assert data["malformed"] == {"objectives": 4}
    rec = daemon.store.get("bad-action-1")
    assert (rec["state"], rec["action"], rec["tags"]) == ("failed", "no_such_action", ["t"])
    assert rec["reason"].startswith("rejected: objective: action: ") and "no_such_action" in rec["reason"]
    assert redis_state(redis_conn, "bad-action-1")["reason"] == rec["reason"]
    assert "at least two labels" in daemon.store.get("one-label-1")["reason"]
    assert daemon.store.get("known-2")["state"] == redis_state(redis_conn, "known-2")["state"] == "queued"
    assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0


def test_refused_objective_stored_by_a_dead_pass_ends_failed(daemon, redis_conn):
    """The daemon stored the objective ``queued`` and died before refusing it:
    read again, it is refused now (it was acknowledged and left ``queued`` in
    the store and ``submitted`` in Redis)."""
    # no policy.yaml beside the config: the agent action is refused at admission
    agent = validate({"id": "agent-1", "input": "tidy up"}, daemon.config)
    mirror_state(redis_conn, agent.id, {"state": "submitted", "action": agent.action}, 60)
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(agent.to_dict())})
    assert daemon.store.add_queued(agent)                          # the dead pass's transaction
    daemon.handle(daemon.read_streams(block_ms=100))

    rec = daemon.store.get("agent-1")
    assert rec["state"] == "failed" and rec["reason"].startswith("refused: governor.policy-unusable ")
    assert redis_state(redis_conn, "agent-1")["state"] == "failed"
    assert all(Q.queue(name, redis_conn).count == 0 for name in Q.QUEUES)   # nothing enqueued
    assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0


def test_two_entries_of_one_id_in_a_batch_are_enqueued_once(daemon, redis_conn):
    """RQ's enqueue_many refuses a repeated job id (ValueError, which is not
    transient: the daemon's main loop died on it)."""
    twice = validate({"id": "twice-1", "action": "classify", "input": "x", "labels": "feat,fix"}, daemon.config)
    for _ in range(2):
        redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(twice.to_dict())})
    daemon.handle(daemon.read_streams(block_ms=100))
    assert Q.queue(Q.PRIORITY_QUEUE["normal"], redis_conn).job_ids == ["twice-1"]
    assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0


def test_a_valid_entry_of_an_id_rejected_before_is_not_run_and_the_failed_hash_stands(daemon, redis_conn):
    """An entry rejected at admission ends its id ``failed`` (stored, and its
    Redis hash).  A valid entry of the same id read by a later pass is
    acknowledged and left alone, as an entry of any id that ended is: before,
    it was stored and enqueued, and its ``queued`` mirror went over the final
    hash (a plain HSET)."""
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps({"id": "again-1", "action": "nope",
                                                                  "input": "x"})})
    daemon.handle(daemon.read_streams(block_ms=100))
    rejected = redis_state(redis_conn, "again-1")
    assert rejected["state"] == "failed" and rejected["reason"].startswith("rejected: ")

    good = validate({"id": "again-1", "action": "classify", "input": "x", "labels": "feat,fix"}, daemon.config)
    redis_conn.xadd(K.OBJECTIVE_STREAM, {"objective": json.dumps(good.to_dict())})
    daemon.handle(daemon.read_streams(block_ms=100))
    assert daemon.store.get("again-1")["state"] == "failed"          # the rejected objective stands
    assert redis_state(redis_conn, "again-1") == rejected            # the final hash stands, unchanged
    assert all(Q.queue(name, redis_conn).count == 0 for name in Q.QUEUES)   # nothing enqueued
    assert redis_conn.xpending(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP)["pending"] == 0
