"""The trace model and store without a model: parameter extraction, learning
a transcript, validations, the confidence rule, the daemon's event hook."""

from __future__ import annotations

import json
import re

import pytest

from swarmd.agent.traces import (NotLearnable, TraceError, TraceStore, check, extract_params, learn,
                                  updated_confidence)
from swarmd.objectives import Objective
from swarmd.daemon.store import Store
from swarmd.validation import validate
from swarmd.agent.traces import Trace


def ran(n, command, output="", exit_code=0, tool="shell", **args):
    return {"n": n, "tool": tool, "args": args or {"command": command}, "ran": True, "exit_code": exit_code,
            "output": output, "decision": "allow", "rule": "r", "reason": "x", "error": None}


def test_parameters_by_kind_and_rank():
    params = extract_params("Convert data/people.csv to JSON in people.json, keep 'Name' and the first 20 rows "
                            "of v1.2.3 from https://example.org/x")
    assert [(p.name, p.example, p.suffix) for p in params] == [
        ("path1", "data/people.csv", ".csv"), ("path2", "people.json", ".json"), ("quoted1", "Name", ""),
        ("number1", "20", ""), ("version1", "v1.2.3", ""), ("url1", "https://example.org/x", "")]


def test_learn_slots_parameters_and_binds_answer_numbers_to_outputs():
    transcript = [ran(1, "grep -ro TODO src | wc -l", "7\n"), {"n": 2, "invalid": "x", "reply": "?"},
                  ran(3, "ls src", "a.py b.py\n")]
    trace = learn("Count the 'TODO' markers in src/", transcript, "7 TODO markers in src/ (src files)",
                  pre_existing={"src"})
    assert [s.args["command"] for s in trace.steps] == ["grep -ro {{quoted1}} {{path1}} | wc -l", "ls {{path1}}"]
    assert trace.answer == "{{out1}} {{quoted1}} markers in {{path1}} (src files)"   # the bare word stays prose
    assert [v.model_dump(by_alias=True) for v in trace.steps[0].expect] == [
        {"type": "exit_code", "equals": 0}, {"type": "output_matches", "pattern": "^(?P<out1>\\d+)$"}]
    assert [p.model_dump() for p in trace.preconditions] == [{"type": "file_exists", "path": "{{path1}}"}]


def test_a_number_from_neither_goal_nor_output_is_not_learned():
    with pytest.raises(NotLearnable, match="the answer's value '12' comes from neither"):
        learn("Count the files in src/", [ran(1, "ls src", "a.py\n")], "12 files")
    with pytest.raises(NotLearnable, match="no tool step ran"):
        learn("Count the files in src/", [], "none")


def test_validations_check_what_they_say(tmp_path):
    (tmp_path / "out.json").write_text(json.dumps([{"name": "a"}]))
    trace = validate(Trace, {"goal": "g", "template": "g", "representation": {}, "params": [], "answer": "{{n}}",
                             "steps": [{"tool": "shell", "args": {"command": "x"}, "expect": [
                                 {"type": "exit_code", "equals": 0},
                                 {"type": "file_exists", "path": "out.json"},
                                 {"type": "output_contains", "text": "rows"},
                                 {"type": "output_matches", "pattern": r"(?P<n>\d+) rows"},
                                 {"type": "json_schema", "path": "out.json",
                                  "schema": {"type": "array", "items": {"required": ["name", "age"]}}}]}]})
    values: dict = {}
    results = [check(v, "3 rows", 0, tmp_path, values) for v in trace.steps[0].expect]
    assert results[:4] == [None, None, None, None] and values == {"n": "3"}
    assert results[4] == "JSON schema: 'age' is a required property"
    assert check(trace.steps[0].expect[0], "", 2, tmp_path, {}) == "exit code 2, expected 0"
    assert check(trace.steps[0].expect[1].model_copy(update={"path": "../../etc/passwd"}), "", 0, tmp_path, {}) \
        == "../../etc/passwd does not exist in the workspace"


def test_unknown_validation_type_is_an_error_never_a_pass():
    with pytest.raises(TraceError) as info:
        validate(Trace, {"goal": "g", "template": "g", "representation": {}, "params": [], "answer": "",
                         "steps": [{"tool": "shell", "args": {"command": "x"},
                                    "expect": [{"type": "llm_judge", "prompt": "ok?"}]}]},
                 TraceError, file="trace t v1")
    assert str(info.value).startswith("trace t v1: steps[0].expect[0]")


def test_confidence_rule_by_hand():
    c = 0.75
    for ok, expected in ((True, 0.775), (True, 0.7975), (False, 0.55825), (True, 0.602425)):
        c = updated_confidence(c, ok)       # success: c + (1 - c) * 0.1; failure: 0.7 * c
        assert c == pytest.approx(expected)


def test_match_needs_confidence_and_success_rate(tmp_path):
    store = TraceStore(tmp_path / "m.db")
    trace = learn("Count the 'TODO' markers in src/", [ran(1, "grep -ro TODO src | wc -l", "7\n")], "7 markers")
    [(tid, _v)] = store.apply({"learn": trace.model_dump(by_alias=True)}, 0.8)
    goal = "Count the 'FIXME' markers in lib/"
    m = store.match(goal, 0.8, 0.9, 0.85)
    assert (m.values, m.follow, m.why) == ({"quoted1": "FIXME", "path1": "lib/"}, False,
                                           "confidence 0.750 < traces.follow_threshold 0.9")
    store.conn.execute("UPDATE traces SET confidence=0.95, runs=7, successes=6")     # 6/7 = 0.857 > 0.85
    assert store.match(goal, 0.8, 0.9, 0.85).follow
    store.conn.execute("UPDATE traces SET runs=8")                                     # 6/8 = 0.75
    assert store.match(goal, 0.8, 0.9, 0.85).why == "success rate 0.750 <= traces.min_success_rate 0.85"
    assert store.match("Count the 'FIXME' markers in lib/x.py", 0.8, 0.0, 0.0) is None   # path suffix differs
    for unsafe in ("x; touch pwned", "$(id)", "-rf", "a|b", "*"):       # substituted into commands: never
        assert store.match(f"Count the '{unsafe}' markers in lib/", 0.8, 0.0, 0.0) is None, unsafe
    assert store.match("Count the \"it's\" markers in lib/", 0.8, 0.0, 0.0) is None
    store.set_disabled(tid)
    assert store.match(goal, 0.8, 0.0, 0.0) is None
    store.close()


def test_daemon_store_applies_trace_events_once_and_survives_a_bad_one(tmp_path):
    store = Store(tmp_path / "m.db")
    for oid in ("o1", "o2"):
        store.add_queued(Objective(id=oid, action="agent", input="x", submitted_at=1.0))
    trace = learn("Count the 'TODO' markers in src/", [ran(1, "grep -ro TODO src | wc -l", "7\n")], "7 markers")
    good = {"state": "done", "result": {}, "attempts": [], "trace": {"learn": trace.model_dump(by_alias=True)}}
    bad = {"state": "done", "result": {}, "attempts": [], "trace": {"learn": {"goal": "g", "steps": []}}}
    assert store.apply_events([("e1", "finished", "o1", good), ("e1", "finished", "o1", good),
                               ("e2", "finished", "o2", bad)]) == [True, False, True]
    traces = TraceStore(tmp_path / "m.db")
    assert len(traces.rows()) == 1 and store.get("o2")["state"] == "done"
    traces.close()
    store.close()


def test_quote_span_keeps_the_goals_spelling_and_refuses_what_is_not_there():
    from swarmd.agent.traces import quote_span
    goal = "Add the entry Fix Billing leak to HISTORY.md"
    assert quote_span(goal, " fix billing leak ") == "Add the entry 'Fix Billing leak' to HISTORY.md"
    assert [quote_span(goal, v) for v in ("Fix billing leaks", "", "leak; rm x", "-rf")] == [None] * 4


def test_slot_then_fill_gives_the_text_back():
    """Property: a learner's argument, slotted for the goal's parameters and
    filled with the same values, is the argument again (no value is lost or
    moved), for any mix of parameter values and other words."""
    from hypothesis import given, settings, strategies as st

    from swarmd.agent.traces import fill, slot

    goal = "Convert data/in.csv to JSON in out/in.json with 'full name' at v1.2.3 from src/ 42 times"
    params = extract_params(goal)
    pieces = st.sampled_from([p.example for p in params] + ["src", "python3", "-o", "x.py", "12", "in", "'", "/",
                                                             " ", "data/", ".csv", "1.2", "142", "v1.2.30",
                                                             "out/in.json.bak", "full names"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(pieces, max_size=12))
    def roundtrip(parts):
        text = " ".join(parts)
        values = {p.name: p.example for p in params}
        slotted = slot(text, params)
        assert fill(slotted, values) == text      # (bare_dirs turns "src" into "src/" on purpose)
        assert re.search(r"[\w.]\{\{|\}\}[\w]", slotted) is None, slotted   # never inside a longer token

    roundtrip()
