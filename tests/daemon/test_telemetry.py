"""OpenTelemetry traces (issue 23, "Tracing"): one trace per objective from ``swarmctl submit``
to the worker (W3C ``traceparent`` in the objective's fields), a ``chat {model}`` span per tier
attempt with the GenAI attributes, ``execute_tool {tool}`` with the governor's decision and
rule.  Captured once with the SDK's in-memory exporter (submit, daemon and worker in this
process, real Redis), once through a loopback OTLP/HTTP receiver (the real daemon, its
worker and ``swarmctl submit`` as processes, exporting by the standard OTEL_* variables)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from swarmd import queue as Q
from swarmd import telemetry
from swarmd.config import load_config
from swarmd.governor import Governor
from swarmd.governor.execute import run_tool
from swarmd.governor.policy import load_policy
from swarmd.workers.context import ContextWorker, build_context
from tests.daemon.helpers import ROOT, daemon_env, start_daemon, swarmctl_run, wait_final, write_config
from tests.wait import LONG_S, wait_until

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the [otel] extra is not installed")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

MODEL = "gemma-3-270m-q8_0"        # LOCAL_FAST's model name in the shipped config (served by echo here)
TAG = ["--action", "tag", "--labels", "feat,fix", "--input", "names no tag"]


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    yield exporter
    telemetry.use_provider(None)


def test_one_trace_from_submit_through_the_worker(daemon, spans, tmp_path, redis_url, redis_conn, monkeypatch,
                                                  capsys):
    config_path = tmp_path / "llm_config.yaml"
    code, _ = swarmctl_run(monkeypatch, capsys, redis_url, config_path, "submit", *TAG, "--id", "t1")
    assert code == 0
    daemon.handle(daemon.read_streams(block_ms=100))                      # admitted and enqueued
    ctx = build_context(load_config(config_path), redis_conn, tmp_path / "data", "w1")
    ContextWorker([Q.queue("default", redis_conn)], ctx, connection=redis_conn).work(burst=True)
    daemon.handle(daemon.read_streams(block_ms=100))                      # its events persisted
    [attempt] = daemon.store.get("t1")["attempts"]

    by_name = {s.name: s for s in spans.get_finished_spans()}
    submit, objective, chat = by_name["submit"], by_name["objective tag"], by_name[f"chat {MODEL}"]
    assert submit.parent is None and submit.attributes["swarmd.objective.id"] == "t1"
    assert {objective.context.trace_id, chat.context.trace_id} == {submit.context.trace_id}
    assert objective.parent.span_id == submit.context.span_id           # carried through Redis
    assert chat.parent.span_id == objective.context.span_id
    assert dict(chat.attributes) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "echo", "gen_ai.request.model": MODEL,
        "gen_ai.usage.input_tokens": attempt["tokens_in"], "gen_ai.usage.output_tokens": attempt["tokens_out"],
        "swarmd.tier": "LOCAL_FAST", "swarmd.confidence": 0.0, "swarmd.threshold": 0.7, "swarmd.cost_usd": 0.0,
        "swarmd.outcome": "rejected"}
    assert attempt["tokens_in"] > 0


def test_execute_tool_spans_carry_the_governors_decision_and_rule(spans, tmp_path):
    gov = Governor(load_policy(ROOT / "src" / "swarmd" / "policy.yaml"))
    with telemetry.span("invoke_agent"):
        denied = run_tool(gov, "shell", {"command": "rm -rf /"}, str(tmp_path), objective_id="a1")
    assert denied.decision.decision == "deny" and not denied.ran
    [tool] = [s for s in spans.get_finished_spans() if s.name == "execute_tool shell"]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool" and tool.attributes["gen_ai.tool.name"] == "shell"
    assert (tool.attributes["swarmd.governor.decision"], tool.attributes["swarmd.governor.rule"]) == (
        "deny", denied.decision.rule)


class _Receiver(BaseHTTPRequestHandler):
    """``POST /v1/traces`` (OTLP/HTTP protobuf): the decoded spans go to ``server.spans``."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
                for scope in resource.scope_spans:
                    self.server.spans.extend((service, s) for s in scope.spans)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_reach_an_otlp_http_receiver(tmp_path, redis_url):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.spans = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    config = write_config(tmp_path, fast_provider="echo")
    daemon = start_daemon(tmp_path, redis_url, config, workers=1, **otel)
    try:
        subprocess.run([sys.executable, "-m", "swarmd.cli", "--config", str(config), "submit", *TAG,
                        "--id", "o1"], env=daemon_env(redis_url, **otel), check=True, timeout=LONG_S,
                       capture_output=True)
        wait_final(tmp_path / "data" / "memory.db", ["o1"])

        def names() -> dict[str, tuple]:
            return {s.name: (service, s) for service, s in list(server.spans)}
        wait_until(lambda: {"submit", "objective tag", f"chat {MODEL}"} <= set(names()), LONG_S,
                   lambda: f"the spans of o1 at the receiver (got {sorted(names())})")
        got = names()
        (submit_service, submit), (_, chat) = got["submit"], got[f"chat {MODEL}"]
        worker_service, objective = got["objective tag"]
        assert (submit_service, worker_service) == ("swarmctl", "swarmd-worker")
        assert chat.trace_id == objective.trace_id == submit.trace_id and objective.parent_span_id == submit.span_id
        attrs = {a.key: a.value for a in chat.attributes}
        assert attrs["gen_ai.request.model"].string_value == MODEL and attrs["swarmd.tier"].string_value == "LOCAL_FAST"

        # the API's submit traces as swarmctl's does (one implementation: swarmd.daemon.control.push)
        data = tmp_path / "data"
        with httpx.Client(base_url=(data / "api.url").read_text().strip(), timeout=LONG_S,
                          headers={"Authorization": f"Bearer {(data / 'api.token').read_text().strip()}"}) as api:
            assert api.post("/api/v1/objectives", json={"id": "o2", "action": "tag", "labels": ["feat", "fix"],
                                                        "input": "names no tag"}).status_code == 202
        wait_final(data / "memory.db", ["o2"])

        def trace_of(oid: str) -> tuple | None:
            spans = list(server.spans)
            root = next(((svc, s) for svc, s in spans if s.name == "submit" and any(
                a.key == "swarmd.objective.id" and a.value.string_value == oid for a in s.attributes)), None)
            child = root and next((s for _svc, s in spans if s.name == "objective tag"
                                   and s.parent_span_id == root[1].span_id), None)
            return (root[0], root[1], child) if child else None
        api_service, api_submit, api_objective = wait_until(lambda: trace_of("o2"), LONG_S,
                                                            "the API's submit span of o2 and its worker span")
        assert api_service == "swarmd-api" and api_objective.trace_id == api_submit.trace_id != submit.trace_id
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        server.shutdown()


def test_tracing_is_opt_in_through_the_standard_variables():
    assert not telemetry.configured({})
    assert not telemetry.configured({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not telemetry.configured({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert telemetry.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x"})
    assert telemetry.configured({"OTEL_TRACES_EXPORTER": "console"})
    assert not telemetry.enabled() and telemetry.span("x") is telemetry.NO_SPAN   # off: a shared no-op
    assert telemetry.objective_span({"id": "a", "action": "agent"}) is telemetry.NO_SPAN and telemetry.inject() is None
