"""The answer cache (tier MEMORY): exact and template hits of verified inputs
for the same action and label set, no hit on disagreement, and a template
disabled once an answer it served is verified wrong."""

from __future__ import annotations

import pytest

from swarmd.costs import Ledger
from swarmd.memory.cache import AnswerCache
from swarmd.memory.feedback import Feedback, apply_feedback
from swarmd.memory.gate import RouterMemory
from swarmd.memory.outcomes import teacher_record
from swarmd.memory.records import Verified
from swarmd.router import Router
from tests.fakes import Answer, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import make_config
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import UNSURE

LABELS = ("build", "ci", "docs", "fix")


def _verified(text, answer, source="teacher", oid=None, labels=LABELS):
    return Verified("classify", labels, text, answer, source, objective_id=oid)


def test_a_teacher_answer_is_served_again_from_memory_at_no_cost(memory, tmp_path):
    ledger = Ledger(tmp_path / "memory.db")
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, FakeAnthropic(["docs"]) as api:
        router = Router(make_config(fast.url, closed_port_url(), api.url), ledger, memory=RouterMemory(memory))
        first = router.route("classify", "Explain the --dry-run flag", LABELS)
        memory.add(teacher_record("classify", "Explain the --dry-run flag", LABELS, first.attempts))
        calls = len(fast.model_requests()) + len(api.model_requests())
        again = router.route("classify", "  explain the   --dry-run FLAG ", LABELS[::-1])   # same set, any order
        assert len(fast.model_requests()) + len(api.model_requests()) == calls          # no model called
        other_set = router.route("classify", "Explain the --dry-run flag", ("docs", "fix"))
    assert (first.tier, first.answer) == ("API_FALLBACK", "docs")
    assert (again.tier, again.model, again.answer, again.cost_usd, again.status) == \
        ("MEMORY", "exact", "docs", 0.0, "accepted")
    assert other_set.tier != "MEMORY"                            # another label set is another question
    assert [r["tier"] for r in ledger.rows()] == ["LOCAL_FAST", "API_FALLBACK", "MEMORY", "LOCAL_FAST", "API_FALLBACK"]


def test_a_template_needs_two_agreeing_inputs_and_no_disagreement(memory):
    cache = AnswerCache(memory)
    memory.add(_verified("bump ruff from 0.4.1 to 0.4.2 (#1201)", "build"))
    assert cache.lookup("classify", "bump ruff from 0.5.0 to 0.5.1 (#1300)", LABELS) is None
    memory.add(_verified("bump ruff from 0.4.2 to 0.4.3 (#1207)", "build"))
    hit = cache.lookup("classify", "bump ruff from 0.5.0 to 0.5.1 (#1300)", LABELS)
    assert (hit.answer, hit.kind, hit.support) == ("build", "template", 2)
    assert cache.lookup("labels-differ", "bump ruff from 0.5.0 to 0.5.1 (#1300)", LABELS) is None
    memory.add(_verified("bump ruff from 0.4.3 to 0.4.4 (#1210)", "ci"))       # one disagreement ends it
    assert cache.lookup("classify", "bump ruff from 0.5.0 to 0.5.1 (#1300)", LABELS) is None


def test_a_human_answer_outranks_a_teacher_on_the_same_input(memory):
    cache = AnswerCache(memory)
    memory.add(_verified("update the docs workflow", "docs", oid="o1"))
    assert cache.lookup("classify", "update the docs workflow", LABELS).answer == "docs"
    memory.add(_verified("update the docs workflow", "ci", source="human", oid="o1"))
    assert cache.lookup("classify", "update the docs workflow", LABELS).answer == "ci"


def test_a_template_whose_answer_is_verified_wrong_is_disabled(memory, tmp_path, log_lines):
    from swarmd.daemon.store import Store
    from swarmd.objectives import Objective

    cache = AnswerCache(memory)
    for i in range(3):
        memory.add(_verified(f"update screenshots of {i} commands", "docs"))
    hit = cache.lookup("classify", "update screenshots of 7 commands", LABELS)
    assert hit.kind == "template"
    store = Store(tmp_path / "memory.db")                          # the objective the cache answered
    store.add_queued(Objective(id="c1", action="classify", input="update screenshots of 7 commands",
                               labels=list(LABELS)))
    served = {"tier": "MEMORY", "provider": "memory", "model": "template", "answer": "docs", "confidence": 1.0,
              "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "latency_ms": 0.1, "outcome": "accepted",
              "error": None, "ts": 1.0}
    store.apply_event("e1", "finished", "c1", {"state": "done", "action": "classify", "attempts": [served],
                      "result": {"answer": "docs", "tier": "MEMORY", "model": "template", "confidence": 1.0}})
    apply_feedback(memory, store.get, [Feedback("c1", answer="ci")])
    assert cache.lookup("classify", "update screenshots of 9 commands", LABELS) is None
    assert cache.lookup("classify", "update screenshots of 7 commands", LABELS).answer == "ci"   # exact, human
    assert any("cache template 'update screenshots of <n> commands' of classify disabled" in l for l in log_lines)
    store.close()


def test_a_bad_verdict_vetoes_the_exact_answer(memory):
    cache = AnswerCache(memory)
    memory.add(_verified("tweak the release job", "ci", oid="o1"))
    memory.add(Verified("classify", LABELS, "tweak the release job", None, "human", objective_id="o1",
                        local_answer="ci", local_tier="API_FALLBACK"))
    assert cache.lookup("classify", "tweak the release job", LABELS) is None


def test_a_worker_answers_a_repeated_objective_from_memory(swarm_factory):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])]) as fast, FakeAnthropic(["docs"]) as api:
        swarm = swarm_factory(fast.url, api.url)
        swarm.run({"id": "r-1", "action": "classify", "input": "Explain the flag", "labels": ",".join(LABELS)})
        calls = len(fast.model_requests()) + len(api.model_requests())
        swarm.run({"id": "r-2", "action": "classify", "input": "explain the flag", "labels": ",".join(LABELS)})
        assert len(fast.model_requests()) + len(api.model_requests()) == calls
    second = swarm.daemon.store.get("r-2")
    assert (second["tier"], second["model"], second["answer"], second["cost_usd"]) == ("MEMORY", "exact", "docs", 0.0)
