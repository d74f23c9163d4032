"""Retrieved verified examples in a local model's prompt (memory.retrieval_examples):
after the cached prefix, only for a local model with a calibration fitted on that
prompt form, never for the API tier; BM25 needs neither embedder nor vector index.
The prompt form of each answer is recorded (attempt, verified record) and a learned
gate applies to the form it was fitted on only; the daemon keeps the vector index
up to date and a worker retrieves a new verified record without a restart."""

from __future__ import annotations

import json

import yaml

from swarmd.costs import Ledger
from swarmd.memory.gate import NEVER, open_router_memory
from swarmd.memory.outcomes import teacher_record
from swarmd.memory.records import Memory, Verified
from swarmd.memory.retrieval import Retriever
from swarmd.router import Router
from tests.fakes import Answer, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import ROOT, make_config
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import SURE, UNSURE
from tests.wait import wait_until

LABELS = ("build", "docs", "feat", "fix")
RETRIEVED_CAL = {"model": "small", "slope": 1.0, "intercept": 0.0, "prompt": "retrieved"}


def _config(fast_url, api_url, calibrations=()):
    actions = yaml.safe_load((ROOT / "src" / "swarmd" / "llm_config.yaml").read_text())["actions"]
    actions["classify"]["label_calibration"] = list(calibrations)
    return make_config(fast_url, closed_port_url(), api_url, actions=actions,
                       memory={"retrieval_examples": 2, "retrieval_mode": "bm25", "audit_rate": 0.0})


def _prompts(server) -> list[str]:
    return [r.json.get("prompt") or r.json["messages"][-1]["content"] for r in server.model_requests()]


POOL = [("typo in the installation docs", "docs"), ("bump ruff from 0.4 to 0.5", "build"),
        ("crash when the config is empty", "fix")]


def _with_pool(config, path):
    memory = open_router_memory(config, path)
    memory.memory.add_many([Verified("classify", LABELS, text, answer, "human", objective_id=str(i))
                            for i, (text, answer) in enumerate(POOL)])
    return memory


def _learn_retrieved(memory: Memory) -> None:
    """A learned gate of model ``small`` on the retrieved form that never accepts (what a consolidation's swap writes)."""
    memory.conn.execute(
        "INSERT INTO gate_calibrations (action, label_key, model, prompt, calibration, threshold, trained_on, "
        "held_out, utility_new, utility_old, held_out_coverage, active, created_at, note) "
        "VALUES ('classify', ?, 'small', 'retrieved', ?, ?, 100, 40, 1, 0, 0, 1, 0, 'test')",
        (",".join(sorted(LABELS)), json.dumps(RETRIEVED_CAL), NEVER))


class CountingRetriever(Retriever):
    """The real BM25 :class:`Retriever`, counting its searches."""

    calls = 0

    def search(self, *args, **kwargs):
        self.calls += 1
        return super().search(*args, **kwargs)


def _route(tmp_path, calibrations):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])] * 2) as fast, FakeAnthropic(["docs"] * 2) as api:
        config = _config(fast.url, api.url, calibrations)
        memory = _with_pool(config, tmp_path / "memory.db")
        router = Router(config, Ledger(tmp_path / "memory.db"), memory=memory)
        result = router.route("classify", "Typo in the docs index page", LABELS)
        router.close()
        return result, _prompts(fast), [r.json for r in api.model_requests()]


def test_a_local_model_calibrated_on_retrieved_prompts_gets_examples_after_the_prefix(tmp_path):
    result, local, api = _route(tmp_path, [RETRIEVED_CAL])
    assert result.tier == "API_FALLBACK"                        # the fake's unsure answer escalated
    prompt = local[0]
    fixed_end = prompt.index("wrong exit code when no commits are found")     # last fixed example
    example = prompt.index("Message: typo in the installation docs\nType: docs")
    assert fixed_end < example < prompt.index("Message: Typo in the docs index page\nType:")
    assert "typo in the installation docs" not in str(api)    # the API tier gets the fixed prompt


def test_without_a_calibration_for_the_retrieved_form_the_fixed_prompt_is_used(tmp_path):
    _result, local, _api = _route(tmp_path, [{**RETRIEVED_CAL, "prompt": "fixed"}])
    assert "typo in the installation docs" not in local[0]


def test_a_route_retrieves_only_when_a_model_of_its_plan_would_be_asked_with_the_examples(tmp_path):
    cases = [("fixed form only", [{**RETRIEVED_CAL, "prompt": "fixed"}], False, None, 0),
             ("shipped", [RETRIEVED_CAL], False, None, 1),
             ("learned", [], True, None, 1),
             ("API models only", [RETRIEVED_CAL], False, "api_only", 0)]
    with FakeOllama([Answer("fix", logprobs=[SURE])] * 4) as fast, FakeAnthropic(["docs"] * 4) as api:
        for name, calibrations, learned, strategy, searches in cases:
            config = _config(fast.url, api.url, calibrations)
            memory = _with_pool(config, tmp_path / f"{len(calibrations)}-{learned}-{strategy}.db")
            memory.retriever = CountingRetriever(memory.memory)
            if learned:
                _learn_retrieved(memory.memory)
            router = Router(config, memory=memory)
            result = router.route("classify", "Typo in the docs index page", LABELS, strategy=strategy)
            router.close()
            assert memory.retriever.calls == searches, name
            assert result.attempts[0].prompt == ("retrieved" if searches else "fixed"), name


def test_the_prompt_form_goes_with_the_answer_into_its_verified_record(tmp_path):
    result, _local, _api = _route(tmp_path, [RETRIEVED_CAL])
    assert [(a.tier, a.prompt) for a in result.attempts] == [("LOCAL_FAST", "retrieved"), ("API_FALLBACK", "fixed")]
    memory = Memory(tmp_path / "memory.db")
    try:
        memory.add(teacher_record("classify", "Typo in the docs index page", LABELS, result.attempts, "t"))
        (stored,) = memory.records("source = 'teacher'")
    finally:
        memory.close()
    assert (stored.local_prompt, stored.prompt_form, stored.answer) == ("retrieved", "retrieved", "docs")
    fixed, _local, _api = _route(tmp_path / "b", [])
    assert fixed.attempts[0].prompt == "fixed"


def test_a_learned_gate_applies_to_the_prompt_form_it_was_fitted_on_only(tmp_path):
    with FakeOllama([Answer("fix", logprobs=[SURE])] * 2) as fast, FakeAnthropic(["docs"] * 2) as api:
        config = _config(fast.url, api.url)                 # nothing shipped for either form
        memory = _with_pool(config, tmp_path / "memory.db")
        _learn_retrieved(memory.memory)
        router = Router(config, memory=memory)
        near = router.route("classify", "Typo in the docs index page", LABELS)   # examples found: retrieved form
        far = router.route("classify", "zzz qqq", LABELS)                      # none found: the fixed form
        router.close()
    assert near.attempts[0].prompt == "retrieved" and near.attempts[0].outcome == "escalated"   # its gate: never
    assert (near.tier, near.answer) == ("API_FALLBACK", "docs")    # the accepted answer, not the surer rejected one
    assert far.attempts[0].prompt == "fixed" and far.tier == "LOCAL_FAST"            # configured 0.7 (0.95 sure)


def test_the_daemon_embeds_new_verified_records_and_a_worker_retrieves_them_from_its_next_job(swarm_factory):
    from swarmd.daemon.memory_jobs import register_memory_jobs, run_consolidation

    memory_cfg = {"retrieval_examples": 2, "retrieval_mode": "hybrid"}
    with FakeOllama([Answer("fix", logprobs=[UNSURE])] * 4) as fast, FakeAnthropic(["docs"] * 4) as api:
        swarm = swarm_factory(fast.url, api.url, memory=memory_cfg)
        register_memory_jobs(swarm.daemon.scheduler, swarm.daemon)
        assert swarm.daemon.scheduler.get_job("memory_index") is not None
        worker = swarm.ctx.router.memory.retriever
        assert worker.search("classify", LABELS, "spelling in the readme", k=2, mode="vector") == []
        swarm.run({"id": "v-1", "action": "classify", "input": "typo in the installation docs",
                   "labels": ",".join(LABELS)})                     # escalated: a teacher record
        assert swarm.daemon.vectors.sync() == 1 and swarm.daemon.vectors.sync() == 0
        found = wait_until(lambda: worker.search("classify", LABELS, "spelling in the readme", k=2, mode="vector"),
                           10, "the worker's index to reload the daemon's file")
        assert [e.answer for e in found] == ["docs"]
        swarm.daemon.memory.add(Verified("classify", LABELS, "bump ruff from 0.4 to 0.5", "build", "human",
                                         objective_id="h-1"))
        assert run_consolidation(swarm.daemon).indexed == 1          # consolidation syncs the index too


def test_the_daemon_opens_its_vector_index_as_a_config_reload_asks(tmp_path):
    from types import SimpleNamespace

    from swarmd.daemon.memory_jobs import VectorSync

    memory = Memory(tmp_path / "memory.db")
    daemon = SimpleNamespace(memory=memory, config=make_config(memory={"retrieval_examples": 0}))
    vectors = VectorSync(daemon)
    try:
        assert vectors.retriever() is None and vectors.sync() == 0
        daemon.config = make_config(memory={"retrieval_examples": 2, "retrieval_mode": "bm25"})
        assert vectors.retriever() is None                    # BM25 alone: nothing to embed
        daemon.config = make_config(memory={"retrieval_examples": 2, "retrieval_mode": "hybrid"})
        opened = vectors.retriever()
        assert opened is not None and opened.embedder is not None
        daemon.config = make_config(memory={"retrieval_examples": 4, "retrieval_mode": "vector"})
        assert vectors.retriever() is opened                  # still vectors in the same place: kept open
        daemon.config = make_config(memory={"retrieval_examples": 0})
        assert vectors.retriever() is None
    finally:
        vectors.close()
        memory.close()
