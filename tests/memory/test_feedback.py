"""Human feedback: every problem named by line, nothing applied from a file
with any bad line, and what each kind of item verifies."""

from __future__ import annotations

import json

import pytest

from swarmd.memory.feedback import Feedback, FeedbackError, apply_feedback, apply_file, read_lines
from swarmd.memory.records import Memory
from swarmd.objectives import Objective
from swarmd.daemon.store import Store

LABELS = ["feat", "fix", "docs"]


def _attempt(tier, model, answer, confidence, outcome):
    return {"tier": tier, "provider": "p", "model": model, "answer": answer, "confidence": confidence,
            "tokens_in": 1, "tokens_out": 1, "cost_usd": 0.0, "latency_ms": 1.0, "outcome": outcome,
            "error": None, "ts": 1.0, "scores": None}


@pytest.fixture
def db(tmp_path):
    """A store with: o-local (fix, accepted locally), o-api (feat from the API after
    a local 'fix'), o-running (not final)."""
    path = tmp_path / "memory.db"
    store = Store(path)
    for oid in ("o-local", "o-api", "o-running"):
        store.add_queued(Objective(id=oid, action="classify", input=f"text of {oid}", labels=LABELS))
    local = _attempt("LOCAL_FAST", "gemma", "fix", 0.9, "accepted")
    store.apply_event("e1", "finished", "o-local", {"state": "done", "action": "classify", "attempts": [local],
                      "result": {"answer": "fix", "tier": "LOCAL_FAST", "model": "gemma", "confidence": 0.9}})
    api = [_attempt("LOCAL_FAST", "gemma", "fix", 0.3, "escalated"), _attempt("API_FALLBACK", "claude", "feat", 0.9, "accepted")]
    store.apply_event("e2", "finished", "o-api", {"state": "done", "action": "classify", "attempts": api,
                      "result": {"answer": "feat", "tier": "API_FALLBACK", "model": "claude", "confidence": 0.9}})
    store.apply_event("e3", "started", "o-running", {"worker": "w"})
    yield store, Memory(path)
    store.close()


def _file(tmp_path, *lines):
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


def test_a_file_with_any_bad_line_applies_nothing_and_names_every_bad_line(db, tmp_path):
    store, memory = db
    path = _file(tmp_path, {"id": "o-local", "answer": "feat"}, {"id": "nope", "answer": "fix"},
                 "{broken", {"id": "o-api", "answer": "chore"}, {"id": "o-running", "verdict": "good"},
                 {"id": "o-api", "verdict": "meh"}, {"id": "o-local", "answer": "fix", "verdict": "good"},
                 {"id": "o-local", "verdict": "bad"}, [1, 2])
    with pytest.raises(FeedbackError) as err:
        apply_file(memory, store.get, path)
    assert err.value.problems == [
        f"{path}:2: unknown objective id 'nope'",
        f"{path}:3: not JSON (Expecting property name enclosed in double quotes)",
        f"{path}:4: answer 'chore' is not one of objective o-api's labels (feat, fix, docs)",
        f"{path}:5: objective o-running is running, not final; give feedback once it is done, unresolved or failed",
        f"{path}:6: \"verdict\" must be \"good\" or \"bad\", found 'meh'",
        f"{path}:7: give exactly one of \"answer\" or \"verdict\"",
        f"{path}:8: objective o-local already given at {path}:1",
        f"{path}:9: expected a JSON object, found list",
    ]
    assert "nothing was written" in str(err.value)
    assert memory.count() == 0
    path.write_text(json.dumps({"id": "o-local", "answer": "feat"}) + "\n")    # the good line alone applies
    assert [r.answer for r in apply_file(memory, store.get, path)] == ["feat"]
    assert memory.count() == 1


def test_feedback_on_a_locally_answered_objective_verifies_that_answer(db):
    store, memory = db
    apply_feedback(memory, store.get, [Feedback("o-local", answer="feat", where="--id o-local")])
    (rec,) = memory.records()
    assert (rec.source, rec.answer, rec.local_answer, rec.local_accepted, rec.local_correct) == \
        ("human", "feat", "fix", True, False)
    apply_feedback(memory, store.get, [Feedback("o-local", verdict="good")])   # given again: replaces
    (rec,) = memory.records()
    assert (rec.answer, rec.local_correct) == ("fix", True)


def test_good_on_an_api_answer_judges_the_local_attempt_and_bad_judges_the_answer_given(db):
    store, memory = db
    apply_feedback(memory, store.get, [Feedback("o-api", verdict="good")])
    (rec,) = memory.records()
    assert (rec.answer, rec.model, rec.local_answer, rec.local_accepted) == ("feat", "gemma", "fix", False)
    apply_feedback(memory, store.get, [Feedback("o-api", verdict="bad", note="it is a fix")])
    (rec,) = memory.records()
    assert (rec.answer, rec.model, rec.local_answer, rec.local_correct, rec.note) == \
        (None, "claude", "feat", False, "it is a fix")


def test_an_empty_or_unreadable_file_is_an_error(tmp_path):
    items, problems = read_lines(_file(tmp_path, ""))
    assert items == [] and len(problems) == 1 and "no feedback items" in problems[0]
    items, problems = read_lines(tmp_path / "missing.jsonl")
    assert items == [] and len(problems) == 1 and "cannot read" in problems[0]
