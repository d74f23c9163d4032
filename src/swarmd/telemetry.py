"""OpenTelemetry traces of objectives, after the GenAI semantic conventions; off unless configured.

Opt-in through the standard variables: tracing is on in a process when ``OTEL_TRACES_EXPORTER``
is set (and not ``none``) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
is, ``OTEL_SDK_DISABLED`` is not ``true``, and the ``[otel]`` extra (opentelemetry-sdk, its
OTLP/HTTP exporter) is installed.  :func:`setup` (called by ``swarmctl``, ``swarmd`` and each
worker at start) then installs a tracer; otherwise every function here returns at once (a
no-op span: one function call of overhead).

One trace per objective: ``swarmctl submit`` opens a ``submit`` span and writes its W3C
``traceparent`` into the objective's fields (:func:`inject`); the worker continues it
(:func:`objective_span`: ``invoke_agent`` for agent objectives), with one ``chat {model}`` span
per tier attempt (:func:`chat_span`) and one ``execute_tool {tool}`` span per governed tool
action (:func:`tool_span`).  All OpenTelemetry imports live in this module.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from loguru import logger

#: The objective field carrying the W3C trace context (https://www.w3.org/TR/trace-context/).
TRACEPARENT = "traceparent"
#: ``gen_ai.provider.name`` of each swarmd provider (GenAI semantic conventions' well-known values
#: where there is one).
PROVIDER_NAMES = {"anthropic": "anthropic", "ollama": "ollama", "llama_cpp": "llama_cpp", "echo": "echo",
                  "memory": "swarmd.memory"}

_tracer = None          # an opentelemetry Tracer once setup() or use_provider() ran


def configured(env: dict | None = None) -> bool:
    """Whether ``env`` (default ``os.environ``) asks for traces (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(service_name: str) -> bool:
    """Install a tracer exporting through ``OTEL_TRACES_EXPORTER`` (``otlp``: OTLP/HTTP
    protobuf to ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT``, the default; ``console``: stdout),
    batched (``OTEL_BSP_*``), spans flushed at exit; ``service.name`` is ``OTEL_SERVICE_NAME``
    or ``service_name``.  Returns whether tracing is on; off (and nothing imported) when not
    :func:`configured` or the ``[otel]`` extra is missing (logged)."""
    if _tracer is not None:
        return True
    if not configured():
        return False
    try:
        from opentelemetry.sdk.resources import Resource  # lazy: optional [otel] extra
        from opentelemetry.sdk.trace import TracerProvider  # lazy: optional [otel] extra
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter  # lazy: [otel]
    except ImportError:
        logger.warning("OTEL_* variables are set but the [otel] extra is not installed: "
                       "pip install 'swarmd[otel]'; no traces")
        return False
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # lazy: [otel]
        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                                                        or service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    use_provider(provider)
    return True


def use_provider(provider) -> None:
    """Trace through ``provider`` (an SDK ``TracerProvider``; tests pass one with an
    in-memory exporter); ``None`` turns tracing off."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("swarmd")


def enabled() -> bool:
    """Whether this process traces (:func:`setup` or :func:`use_provider` installed a tracer)."""
    return _tracer is not None


class _NoSpan:
    """The span of a process that does not trace: every call does nothing."""

    def set_attribute(self, key, value) -> None:
        pass

    def set_attributes(self, attributes) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


NO_SPAN = _NoSpan()


def _context(traceparent: str | None):
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # lazy: [otel]
    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


@contextmanager
def _span(name: str, attributes: dict, traceparent: str | None = None, start_time: int | None = None):
    with _tracer.start_as_current_span(name, context=_context(traceparent), attributes=_clean(attributes),
                                       start_time=start_time, record_exception=True) as span:
        yield span


def _clean(attributes: dict) -> dict:
    return {k: v for k, v in attributes.items() if v is not None}


def span(name: str, traceparent: str | None = None, **attributes):
    """A span ``name`` (context manager yielding it), child of the current span or of
    ``traceparent``; attributes with value ``None`` are left out.  :data:`NO_SPAN` when off."""
    if _tracer is None:
        return NO_SPAN
    return _span(name, attributes, traceparent)


def start_root(name: str, **attributes):
    """A new root span ``name`` (a trace of its own), not made current; the caller ends it
    (``span.end()``).  Only while :func:`enabled`."""
    from opentelemetry.context import Context  # lazy: [otel]
    return _tracer.start_span(name, context=Context(), attributes=_clean(attributes))


def traceparent_of(span_) -> str:
    """The W3C ``traceparent`` naming ``span_`` as the parent."""
    ctx = span_.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def inject() -> str | None:
    """The current span's W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``), or
    ``None`` when off or outside a span."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # lazy: [otel]
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(TRACEPARENT)


def objective_span(objective: dict):
    """The worker's span of one objective (a dict with ``id``, ``action`` and maybe
    :data:`TRACEPARENT`), continuing the trace ``submit`` started: ``invoke_agent`` (GenAI
    ``gen_ai.operation.name=invoke_agent``) for agent objectives, else ``objective {action}``."""
    if _tracer is None:
        return NO_SPAN
    action = objective.get("action")
    attrs = {"swarmd.objective.id": objective.get("id"), "swarmd.action": action,
             "swarmd.strategy": objective.get("strategy")}
    if action == "agent":
        attrs.update({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "swarmd"})
        return _span("invoke_agent", attrs, objective.get(TRACEPARENT))
    return _span(f"objective {action}", attrs, objective.get(TRACEPARENT))


def chat_span(tier: str, provider: str, model: str, tokens_in: int, tokens_out: int, latency_ms: float,
              confidence: float | None, cost_usd: float, outcome: str, error: str | None = None,
              threshold: float | None = None, end_s: float | None = None) -> None:
    """Record one tier attempt, already made, as a ``chat {model}`` span ending at ``end_s``
    (unix seconds; default now) and lasting ``latency_ms`` (ms), child of the current span, with the GenAI attributes
    (``gen_ai.operation.name=chat``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
    ``gen_ai.usage.input_tokens`` / ``output_tokens``, ``error.type`` when it failed) and
    ``swarmd.tier``, ``swarmd.confidence``, ``swarmd.threshold``, ``swarmd.cost_usd`` (USD),
    ``swarmd.outcome``.  Nothing when off."""
    if _tracer is None:
        return
    end = time.time_ns() if end_s is None else int(end_s * 1e9)
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
             "gen_ai.request.model": model, "gen_ai.usage.input_tokens": tokens_in,
             "gen_ai.usage.output_tokens": tokens_out, "swarmd.tier": tier, "swarmd.confidence": confidence,
             "swarmd.threshold": threshold, "swarmd.cost_usd": cost_usd, "swarmd.outcome": outcome,
             "error.type": (error.split(":", 1)[0][:64] or "error") if outcome == "error" else None}
    span_ = _tracer.start_span(f"chat {model}", attributes=_clean(attrs), start_time=end - int(latency_ms * 1e6))
    if outcome == "error":
        from opentelemetry.trace import Status, StatusCode  # lazy: [otel]
        span_.set_status(Status(StatusCode.ERROR, error))
    span_.end(end)


def tool_span(tool: str, objective_id: str | None = None):
    """An ``execute_tool {tool}`` span (GenAI ``gen_ai.operation.name=execute_tool``,
    ``gen_ai.tool.name``) around one governed tool action; the caller sets
    ``swarmd.governor.decision`` and ``swarmd.governor.rule`` on it.  :data:`NO_SPAN` when off."""
    if _tracer is None:
        return NO_SPAN
    return _span(f"execute_tool {tool}", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                                          "swarmd.objective.id": objective_id})
