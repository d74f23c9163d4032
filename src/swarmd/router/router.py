"""The tiered router: cascade, quality gate, escalation and the cost ledger.

For one request the router:

1. takes the escalation chain from the action's starting tier on
   (``actions.<a>.tier`` and ``escalation.chain`` in the config);
2. in each tier, calls the first model that is not cooling down;
3. scores the answer with the quality gate (:mod:`swarmd.router.quality`);
4. accepts it when ``confidence >= threshold``, else escalates to the next tier;
5. writes every call to the cost ledger.

When no tier gives an acceptable answer it returns ``status="unresolved"``
with the most confident answer it saw; it never raises for a model failure.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from loguru import logger

from swarmd.config import Config, ModelConfig
from swarmd.router.ledger import Ledger, LedgerRow
from swarmd.router.prompts import build_prompt
from swarmd.router.providers import Provider, ProviderError, ProviderUnavailable, make_provider
from swarmd.router.quality import Verdict, assess
from swarmd.router.tiers import Availability

ACCEPTED, UNRESOLVED = "accepted", "unresolved"


class RequestError(ValueError):
    """A request the router cannot serve as asked (unknown action, missing labels)."""


@dataclass
class Attempt:
    """One model call made for a request (also one ledger row)."""

    tier: str
    provider: str
    model: str
    answer: str | None
    confidence: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    outcome: str
    error: str | None = None
    ts: float = field(default_factory=time.time)

    def ledger_row(self, action: str, objective_id: str | None) -> LedgerRow:
        """This attempt as a cost-ledger row."""
        return LedgerRow(action=action, tier=self.tier, provider=self.provider, model=self.model,
                         tokens_in=self.tokens_in, tokens_out=self.tokens_out, cost_usd=self.cost_usd,
                         latency_ms=self.latency_ms, confidence=self.confidence, outcome=self.outcome,
                         objective_id=objective_id, error=self.error, ts=self.ts)


@dataclass
class RouteResult:
    """What the router answered.

    ``status`` is ``"accepted"`` or ``"unresolved"``; ``tier``/``model`` name
    the attempt whose answer is returned; ``escalations`` counts moves to a
    further tier after an attempt that was not accepted; ``cost_usd`` (USD) and
    ``latency_ms`` (ms) add up every attempt; ``skipped`` lists models passed
    over because they were cooling down, with the reason.
    """

    answer: str | None
    confidence: float
    tier: str | None
    model: str | None
    status: str
    escalations: int
    cost_usd: float
    latency_ms: float
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reason: str | None = None
    id: str | None = None

    def to_json(self) -> dict:
        """The stable JSON shape: ``id, answer, confidence, tier, model, status,
        escalations, cost_usd, latency_ms`` (plus ``reason`` when unresolved)."""
        out = {k: getattr(self, k) for k in ("id", "answer", "confidence", "tier", "model", "status",
                                              "escalations", "cost_usd", "latency_ms")}
        out["confidence"] = round(self.confidence, 4)
        out["latency_ms"] = round(self.latency_ms, 1)
        if self.reason:
            out["reason"] = self.reason
        return out

    def attempts_json(self) -> list[dict]:
        """Every attempt as a dict (for persistence)."""
        return [asdict(a) for a in self.attempts]


class Router:
    """Routes requests through the tiers of one :class:`~swarmd.config.Config`.

    ``ledger``: where calls are recorded (``None`` = not recorded).
    ``provider_factory``: builds a provider from a tier entry (tests and
    benchmarks may pass their own).  Providers are built on first use and kept
    for the life of the router, so an in-process model loads once.
    """

    def __init__(self, config: Config, ledger: Ledger | None = None,
                 provider_factory: Callable[[ModelConfig, float], Provider] = make_provider,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.ledger = ledger
        self.provider_factory = provider_factory
        self.availability = Availability(config.escalation.cooldown_s, clock)
        self._providers: dict[str, Provider] = {}

    # ------------------------------------------------------------------ helpers
    def _provider(self, key: str, model: ModelConfig) -> Provider:
        if key not in self._providers:
            self._providers[key] = self.provider_factory(model, self.config.escalation.cooldown_s)
        return self._providers[key]

    def check_request(self, action: str, labels: tuple[str, ...]) -> None:
        """Raise :class:`RequestError` when ``action``/``labels`` cannot be served."""
        if action not in self.config.actions:
            raise RequestError(f"unknown action {action!r}; supported: {', '.join(self.config.actions)}")
        output = self.config.actions[action].output
        if output in ("label", "labels"):
            if len(labels) < 2:
                raise RequestError(f"action {action!r} needs at least two labels")
            if len(set(labels)) != len(labels) or any(not l or not l.strip() or "," in l for l in labels):
                raise RequestError("labels must be distinct, non-empty and contain no commas")

    # ------------------------------------------------------------------ routing
    def route(self, action: str, text: str, labels: tuple[str, ...] | list[str] = (),
              objective_id: str | None = None, request_id: str | None = None) -> RouteResult:
        """Answer one request, escalating while confidence < threshold.

        Returns a :class:`RouteResult`.  Raises :class:`RequestError` only for a
        bad request (unknown action, missing labels), never for a model failure.
        """
        labels = tuple(labels)
        self.check_request(action, labels)
        action_cfg = self.config.actions[action]
        prompt = build_prompt(action_cfg, text, labels)
        threshold = self.config.quality.threshold_for(action)
        refusals = tuple(self.config.quality.refusal_phrases)
        chain = self.config.chain_from(action)
        attempts: list[Attempt] = []
        skipped: list[str] = []
        best: tuple[Verdict, Attempt] | None = None
        escalations = 0

        for tier_index, tier in enumerate(chain):
            for model_index, model in enumerate(self.config.tiers[tier]):
                key = f"{tier}/{model.provider}/{model.model}#{model_index}"
                reason = self.availability.down_reason(key)
                if reason is not None:
                    skipped.append(f"{key}: {reason}")
                    continue
                attempt, verdict = self._call(action, tier, model, key, prompt, refusals, threshold)
                if attempt is None:          # unavailable: try the tier's next model
                    skipped.append(f"{key}: {self.availability.down_reason(key)}")
                    continue
                attempts.append(attempt)
                if verdict is not None and (best is None or verdict.confidence > best[0].confidence):
                    best = (verdict, attempt)
                last_tier = tier_index == len(chain) - 1
                if attempt.outcome == "accepted":
                    self._record(action, attempt, objective_id)
                    return self._result(best, attempts, skipped, escalations, ACCEPTED, None, request_id)
                if attempt.outcome != "error":
                    attempt.outcome = "rejected" if last_tier else "escalated"
                self._record(action, attempt, objective_id)
                break                           # a model answered in this tier: escalate
            else:
                continue
            if tier_index < len(chain) - 1:
                escalations += 1
        reason = (f"no tier reached confidence {threshold:.2f}" if attempts
                  else "every tier unavailable")
        return self._result(best, attempts, skipped, escalations, UNRESOLVED, reason, request_id)

    def _call(self, action, tier, model, key, prompt, refusals, threshold):
        """One model call → (Attempt, Verdict) or (None, None) when unavailable."""
        start = time.perf_counter()
        try:
            provider = self._provider(key, model)
            completion = provider.classify(prompt) if prompt.output in ("label", "yes_no") \
                else provider.complete(prompt, model.max_output_tokens)
        except ProviderUnavailable as exc:
            self.availability.mark_down(key, str(exc))
            return None, None
        except ProviderError as exc:
            ms = (time.perf_counter() - start) * 1000
            logger.warning("{} failed: {}", key, exc)
            return Attempt(tier, model.provider, model.model, None, None, 0, 0, 0.0, ms, "error", str(exc)), None
        except Exception as exc:  # a backend bug must not crash the caller
            logger.exception("{} raised unexpectedly", key)
            return Attempt(tier, model.provider, model.model, None, None, 0, 0, 0.0, 0.0, "error",
                           f"{type(exc).__name__}: {exc}"), None
        verdict = assess(prompt, completion, refusals, model.prior_confidence)
        outcome = "accepted" if verdict.confidence >= threshold and verdict.problem is None else "low"
        cost = model.cost_usd(completion.tokens_in, completion.tokens_out)
        attempt = Attempt(tier, model.provider, model.model, verdict.answer, verdict.confidence,
                          completion.tokens_in, completion.tokens_out, cost, completion.latency_ms,
                          outcome, verdict.problem)
        return attempt, verdict

    def _record(self, action: str, a: Attempt, objective_id: str | None) -> None:
        if self.ledger is None:
            return
        try:
            self.ledger.record(a.ledger_row(action, objective_id))
        except Exception:
            logger.exception("could not write the cost ledger row")

    @staticmethod
    def _result(best, attempts, skipped, escalations, status, reason, request_id) -> RouteResult:
        verdict, attempt = best if best else (None, None)
        return RouteResult(
            answer=verdict.answer if verdict else None,
            confidence=verdict.confidence if verdict else 0.0,
            tier=attempt.tier if attempt else None,
            model=attempt.model if attempt else None,
            status=status, escalations=escalations,
            cost_usd=sum(a.cost_usd for a in attempts),
            latency_ms=sum(a.latency_ms for a in attempts),
            attempts=attempts, skipped=skipped, reason=reason, id=request_id)

    def close(self) -> None:
        """Close every provider."""
        for provider in self._providers.values():
            try:
                provider.close()
            except Exception:
                logger.exception("closing provider failed")
        self._providers.clear()
