"""Which configured models can answer here, and whether an action's plan has one.

``swarmctl submit`` (with the daemon's view, from its heartbeat) and ``swarmctl ask`` (its
own) refuse a request no model of whose plan is in reach, with the reason and what to
configure, instead of an ``unresolved`` "every tier unavailable" later.  Out of reach:

* ``anthropic``: no API key (``ANTHROPIC_API_KEY`` or ``api_key``);
* ``ollama``: no host answers ``GET /api/version`` within :data:`PROBE_TIMEOUT_S`;
* ``llama_cpp`` and others: never (in-process).

The embedded model is not in generative actions' plans (why: docs/design.md).
"""

from __future__ import annotations

import httpx

from swarmd.config import Config, ModelConfig

#: Seconds one Ollama host has to answer the probe.
PROBE_TIMEOUT_S = 2.0


def model_key(tier: str, model: ModelConfig, index: int) -> str:
    """``tier/provider/model#index``: the key of :meth:`swarmd.router.Router.model_key`."""
    return f"{tier}/{model.provider}/{model.model}#{index}"


def model_problem(model: ModelConfig, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``model`` cannot answer from this process (a sentence), or ``None``
    when it can as far as can be told without a model call (see the module docstring)."""
    if model.provider == "anthropic":
        if model.api_key is None or not model.api_key.get_secret_value().strip():
            return "no ANTHROPIC_API_KEY configured"
        return None
    if model.provider == "ollama":
        failures = []
        for host in model.hosts:
            try:
                httpx.get(f"{host.rstrip('/')}/api/version", timeout=timeout_s)
            except httpx.HTTPError as exc:
                failures.append(f"{host}: {type(exc).__name__}")
            else:
                return None
        return "no Ollama host answered (" + "; ".join(failures) + ")"
    return None


def model_problems(config: Config, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, str]:
    """``{model key: why it cannot answer}`` for every model of ``config``'s
    tiers that cannot (:func:`model_problem`); models that can are left out.
    Takes up to ``timeout_s`` seconds per unreachable Ollama host."""
    return {model_key(tier, m, i): problem for tier, models in config.tiers.items()
            for i, m in enumerate(models) if (problem := model_problem(m, timeout_s)) is not None}


def _hint(model: ModelConfig) -> str:
    if model.provider == "anthropic":
        return "set ANTHROPIC_API_KEY (under systemd: in /etc/swarmd/swarmd.env)"
    if model.provider == "ollama":
        return (f"start Ollama (`ollama serve`, `ollama pull {model.model}`) on "
                f"{', '.join(model.hosts)} or point OLLAMA_HOST at one")
    return f"make {model.provider} model {model.model} reachable"


def plan_problem(config: Config, action: str, strategy: str | None,
                 problems: dict[str, str] | None = None) -> str | None:
    """Why no model of ``action``'s plan under ``strategy`` (``None``: the
    action's default; :meth:`swarmd.config.Config.plan`) can answer, with
    what to configure (one sentence), or ``None`` when one can.
    ``problems``: :func:`model_problems` as seen by whoever will route the
    request (the daemon's, from its heartbeat); ``None``: probe here, model by
    model, stopping at the first that can answer.  Raises ``KeyError`` for an
    unknown action."""
    strategy = config.strategy_of(action, strategy)
    plan = config.plan(action, strategy)
    reasons, hints = [], []
    for tier, models in plan:
        for index, model in models:
            key = model_key(tier, model, index)
            problem = problems.get(key) if problems is not None else model_problem(model)
            if problem is None:
                return None
            reasons.append(f"{key}: {problem}")
            if (hint := _hint(model)) not in hints:
                hints.append(hint)
    if not plan:
        return None          # a strategy the chain cannot serve: Config.strategy_problem says why
    start = config.actions[action].tier
    note = ""
    if config.escalation.chain.index(start) > 0 and config.actions[action].output in ("text", "json", "code"):
        note = (f" (the embedded model of {config.escalation.chain[0]} is not asked: on summaries it looped or "
                "copied in 19 of 20, bench/generative.py)")
    return (f"action {action!r} under strategy {strategy!r} has no model that can answer now: "
            + "; ".join(reasons) + f"{note}. To run it: " + ", or ".join(hints))
