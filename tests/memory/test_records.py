"""Verified-outcome records: the teacher hook on the cascade, idempotence,
corrupted rows, and the keys (normalised input, template)."""

from __future__ import annotations

import pytest

from swarmd import queue as Q
from swarmd.memory.records import Memory, RecordError, Verified, template_of
from tests.fakes import Answer
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import LABELS, SURE, UNSURE


def _obj(oid: str, text: str = "add a --dry-run flag") -> dict:
    return {"id": oid, "action": "classify", "input": text, "labels": ",".join(LABELS)}


def test_teacher_record_written_when_the_api_answers_after_a_local_rejection(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        swarm.run(_obj("t-1"))
    assert swarm.daemon.store.get("t-1")["tier"] == "API_FALLBACK"
    (rec,) = swarm.daemon.memory.records()
    assert (rec.source, rec.answer, rec.objective_id, rec.verifier) == ("teacher", "feat", "t-1", "claude-sonnet-5-5")
    assert (rec.model, rec.local_tier, rec.local_answer, rec.local_accepted) == ("small", "LOCAL_FAST", "fix", False)
    assert rec.local_confidence == pytest.approx(0.3)
    assert [r["answer"] for r in rec.rejected] == ["fix"] and rec.labels == LABELS
    assert rec.local_correct is False


def test_the_objective_is_read_only_for_an_event_that_holds_a_teacher_record(memory):
    from swarmd.memory.outcomes import observe_finished

    loads = []

    def load():
        loads.append(1)
        return {"id": "t-9", "action": "classify", "input": "fix the parser", "labels": list(LABELS)}

    local = {"tier": "LOCAL_FAST", "model": "small", "answer": "fix", "confidence": 0.9, "outcome": "accepted",
             "ts": 1.0}
    assert not observe_finished(memory, load, {"state": "done", "attempts": [local]}) and loads == []
    escalated = [{**local, "confidence": 0.3, "outcome": "escalated"},
                 {"tier": "API_FALLBACK", "model": "claude", "answer": "feat", "outcome": "accepted"}]
    assert observe_finished(memory, load, {"state": "done", "attempts": escalated}) and loads == [1]
    assert [(r.source, r.answer, r.local_answer) for r in memory.records()] == [("teacher", "feat", "fix")]


@pytest.mark.parametrize("payload_ts, submitted_at, expected", [(42.0, 7.0, 42.0), (None, 7.0, 7.0),
                                                                  (None, None, None)])
def test_a_teacher_record_whose_attempts_lack_ts_is_dated_and_warned_about(memory, log_lines, payload_ts,
                                                                            submitted_at, expected):
    """Attempts without ``ts`` (an older or foreign worker): the record is dated by the finished event,
    else the objective's submission, else now, and a warning names the objective (it was dropped silently:
    ``created_at`` is NOT NULL and the insert is OR IGNORE)."""
    import time

    from swarmd.memory.outcomes import observe_finished

    objective = {"id": "t-ts", "action": "classify", "input": "fix the parser", "labels": list(LABELS),
                 "submitted_at": submitted_at}
    attempts = [{"tier": "LOCAL_FAST", "model": "small", "answer": "fix", "confidence": 0.3, "outcome": "escalated"},
                {"tier": "API_FALLBACK", "model": "claude", "answer": "feat", "outcome": "accepted"}]
    before = time.time()
    assert observe_finished(memory, lambda: objective, {"state": "done", "attempts": attempts, "ts": payload_ts})
    (rec,) = memory.records()
    assert (rec.objective_id, rec.answer) == ("t-ts", "feat")
    if expected is None:
        assert before <= rec.created_at <= time.time()
    else:
        assert rec.created_at == expected
    assert any(line.startswith("WARNING") and "t-ts" in line and "no ts" in line for line in log_lines)


def test_a_redelivered_finished_event_writes_no_second_record(swarm_factory, redis_conn):
    import json

    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        swarm.run(_obj("t-2"))
    (event_id, fields), = [e for e in redis_conn.xrange(Q.EVENT_STREAM) if e[1][b"kind"] == b"finished"]
    swarm.daemon.apply_events([(event_id.decode(), "finished", "t-2", json.loads(fields[b"payload"]))])
    assert swarm.daemon.memory.count() == 1


def test_an_answer_accepted_by_the_gate_alone_is_not_verified(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[SURE])]) as fast, FakeAnthropic(["feat"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        swarm.run(_obj("t-3"))
        assert api.model_requests() == []
    assert swarm.daemon.store.get("t-3")["state"] == "done"
    assert swarm.daemon.memory.count() == 0


def test_a_corrupted_record_is_skipped_with_an_error_naming_it(tmp_path, log_lines):
    memory = Memory(tmp_path / "m.db")
    memory.add_many([Verified("classify", LABELS, f"msg {i}", "fix", "human", objective_id=f"o{i}")
                     for i in range(3)])
    memory.conn.execute("UPDATE verified_outcomes SET rejected='{not json' WHERE objective_id='o1'")
    assert [r.objective_id for r in memory.records()] == ["o0", "o2"]
    assert any("WARNING" in line and "verified_outcomes row 2" in line for line in log_lines)


def test_an_answer_outside_the_labels_is_refused():
    with pytest.raises(RecordError, match="'chore' is not one of the labels"):
        Verified("classify", LABELS, "x", "chore", "human")


def test_an_unknown_prompt_form_is_refused_and_none_reads_as_fixed():
    with pytest.raises(RecordError, match="local_prompt 'few-shot': expected one of fixed, retrieved"):
        Verified("classify", LABELS, "x", "fix", "human", local_prompt="few-shot")
    assert Verified("classify", LABELS, "x", "fix", "human").prompt_form == "fixed"


@pytest.mark.parametrize("text, template", [
    ("bump gitpython from 3.1.52 to 3.1.54 (#2038)", "bump gitpython from <ver> to <ver> (#<n>)"),
    ("Revert  2f9a1c3d  in  v2.0.0rc1", "revert <hash> in <ver>"),
    ("update screenshots for 4 commands", "update screenshots for <n> commands"),
])
def test_template_masks_versions_hashes_and_numbers(text, template):
    assert template_of(text) == template
