"""Fixtures of the execution-trace tests: the real router with the Anthropic
loopback fake (through the official client) as the strong tier that plans
and drives the agent loop, the real governor with the shipped policy, real
tools in temporary workspaces, the real SQLite trace store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from swarmd.config import parse_config
from swarmd.governor import AuditBuffer, Governor, load_policy
from swarmd.agent.traces import TraceStore
from swarmd.router import Router
from swarmd.agent.loop import workspace_dir
from swarmd.agent.follower import run_with_traces
from tests.fakes import closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic

REPO = Path(__file__).resolve().parents[2]
#: USD per million tokens in / out of the fake strong model
PRICES = (2.0, 10.0)


def trace_config(api_url: str, planner: bool = True, fast_url: str | None = None, quality_url: str | None = None,
                 **traces):
    """The shipped config: LOCAL_FAST (``fast_url``: a fake Ollama) and
    LOCAL_QUALITY (``quality_url``: a fake Ollama) on closed ports unless
    given, API_FALLBACK the fake (``planner=False``: on a closed port too);
    ``traces`` overrides."""
    data = yaml.safe_load((REPO / "src" / "swarmd" / "llm_config.yaml").read_text())
    common = {"context_window": 8192, "timeout_s": 5, "max_output_tokens": 256}
    data["tiers"] = {
        "LOCAL_FAST": [{"provider": "ollama", "model": "small", "hosts": [fast_url or closed_port_url()],
                        "price_per_mtok_in": 0, "price_per_mtok_out": 0, **common}],
        "LOCAL_QUALITY": [{"provider": "ollama", "model": "llama3.1:8b", "hosts": [quality_url or closed_port_url()],
                           "price_per_mtok_in": 0, "price_per_mtok_out": 0, **common}],
        "API_FALLBACK": [{"provider": "anthropic", "model": "claude-fake",
                          "base_url": api_url if planner else closed_port_url(),
                          "price_per_mtok_in": PRICES[0], "price_per_mtok_out": PRICES[1], **common}],
    }
    data["traces"] = {**data.get("traces", {}), **traces}
    return parse_config(yaml.safe_dump(data), "test", env={"ANTHROPIC_API_KEY": "sk-ant-test"})


def step(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


def done(answer: str) -> str:
    return json.dumps({"done": answer})


class Runner:
    """Runs agent objectives through :func:`run_with_traces` against one fake
    and one trace store, applying each outcome's trace event as the daemon does."""

    def __init__(self, tmp_path: Path, api: FakeAnthropic, fast_url: str | None = None,
                 quality_url: str | None = None, **traces):
        self.tmp_path, self.api = tmp_path, api
        self.config = trace_config(api.url, fast_url=fast_url, quality_url=quality_url, **traces)
        self.store = TraceStore(tmp_path / "memory.db")
        self.audit = AuditBuffer()
        self.governor = Governor(load_policy(REPO / "src" / "swarmd" / "policy.yaml"), audit=self.audit)

    def workspace(self, oid: str, files: dict[str, str] | None = None, dirs: tuple[str, ...] = ()) -> Path:
        ws = workspace_dir(self.tmp_path, oid)
        for name in dirs:
            (ws / name).mkdir(parents=True)
        for name, text in (files or {}).items():
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            (ws / name).write_text(text)
        return ws

    def run(self, oid: str, goal: str, tags=(), config=None, **fields):
        """Run one objective (``fields``: more objective keys, e.g. ``strategy``, ``max_cost_usd``)."""
        router = Router(config or self.config)
        try:
            out = run_with_traces({"id": oid, "action": "agent", "input": goal, "tags": list(tags), **fields}, router,
                                  self.governor, config or self.config, workspace_dir(self.tmp_path, oid),
                                  self.store)
        finally:
            router.close()
        if out.trace:
            self.store.apply(out.trace, self.config.traces.min_similarity,
                             min_embedding_similarity=self.config.traces.min_embedding_similarity)
        return out

    def prompts(self) -> list[str]:
        return [r.json["messages"][0]["content"] for r in self.api.model_requests()]


@pytest.fixture
def api():
    with FakeAnthropic() as srv:
        yield srv


@pytest.fixture
def runner(tmp_path, api):
    r = Runner(tmp_path, api, follow_threshold=0.75)
    yield r
    r.store.close()
