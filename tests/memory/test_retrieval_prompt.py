"""Retrieved verified examples in a local model's prompt (memory.retrieval_examples):
after the cached prefix, only for a local model with a calibration fitted on that
prompt form, never for the API tier; BM25 needs neither embedder nor vector index."""

from __future__ import annotations

import yaml

from swarmd.costs import Ledger
from swarmd.memory.gate import open_router_memory
from swarmd.memory.records import Verified
from swarmd.router import Router
from tests.fakes import Answer, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.config import ROOT, make_config
from tests.fakes.ollama_server import FakeOllama
from tests.memory.conftest import UNSURE

LABELS = ("build", "docs", "feat", "fix")
RETRIEVED_CAL = {"model": "small", "slope": 1.0, "intercept": 0.0, "prompt": "retrieved"}


def _config(fast_url, api_url, calibrations=()):
    actions = yaml.safe_load((ROOT / "llm_config.yaml").read_text())["actions"]
    actions["classify"]["label_calibration"] = list(calibrations)
    return make_config(fast_url, closed_port_url(), api_url, actions=actions,
                       memory={"retrieval_examples": 2, "retrieval_mode": "bm25", "audit_rate": 0.0})


def _prompts(server) -> list[str]:
    return [r.json.get("prompt") or r.json["messages"][-1]["content"] for r in server.model_requests()]


def _route(tmp_path, calibrations):
    with FakeOllama([Answer("fix", logprobs=[UNSURE])] * 2) as fast, FakeAnthropic(["docs"] * 2) as api:
        config = _config(fast.url, api.url, calibrations)
        memory = open_router_memory(config, tmp_path / "memory.db")
        memory.memory.add_many([Verified("classify", LABELS, text, answer, "human", objective_id=str(i))
                                for i, (text, answer) in enumerate([
                                    ("typo in the installation docs", "docs"),
                                    ("bump ruff from 0.4 to 0.5", "build"),
                                    ("crash when the config is empty", "fix")])])
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
