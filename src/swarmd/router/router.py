"""The tiered router: cascade, quality gate, escalation and the cost ledger.

For one request :meth:`Router.route` takes the escalation chain from the action's starting
tier on, keeping the models the request's routing strategy allows
(:meth:`swarmd.config.Config.plan`); calls the first model of each tier that is not
cooling down; scores the answer with the quality gate; accepts it when ``confidence >=
threshold``, else escalates; and writes every call to the cost ledger.  With no acceptable
answer it returns ``status="unresolved"`` with the most confident answer seen; it never
raises for a model failure.

With a :class:`~swarmd.costs.Budget`, a call to a priced model first reserves its worst case
against every cap and settles to the actual cost after it; a call the caps refuse is not
made (listed in ``skipped``), and a result left below the threshold is ``unresolved`` with
``reason="budget"``.  While spend runs ahead of plan, free-tier answers are accepted at the
paced threshold (:meth:`Budget.pacing_threshold`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from loguru import logger

from swarmd import telemetry
from swarmd.config import Config, ModelConfig
from swarmd.costs.budgets import Budget, NoBudgetStore, Reservation, worst_case_usd
from swarmd.costs.ledger import MEMORY_TIER, Ledger, LedgerRow
from swarmd.errors import BadInput
from swarmd.governor.secrets import redact, register_config
from swarmd.router.prompts import build_prompt
from swarmd.router.providers import Provider, ProviderError, ProviderUnavailable, make_provider
from swarmd.router.providers.base import LABEL_MAX_TOKENS, Prompt
from swarmd.router.quality import Verdict, assess
from swarmd.router.reach import model_key
from swarmd.router.tiers import Availability

ACCEPTED, UNRESOLVED = "accepted", "unresolved"
#: outputs the answer cache may serve
CACHED_OUTPUTS = ("label", "labels", "yes_no")
#: outputs whose requests :meth:`Router.route_many` may send to a model as one batch (one label each)
BATCHED_OUTPUTS = ("label", "yes_no")
#: ``RouteResult.reason`` when a paid tier was refused by a budget and no free
#: tier reached the threshold.
BUDGET = "budget"
#: ``RouteResult.reason`` when the caller's ``should_stop`` said stop before an
#: escalation (the objective was cancelled while running): ``unresolved``, the
#: calls made so far kept in ``attempts``.
STOPPED = "stopped"


class RequestError(BadInput, ValueError):
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
    #: ``{label: ln p(label)}`` when the model gave a label distribution (the
    #: learning memory refits the calibration from these)
    scores: dict[str, float] | None = None
    #: the prompt form the model was asked in (:attr:`Prompt.form`: ``fixed``,
    #: or ``retrieved`` with retrieved verified examples); ``None`` for the
    #: answer cache.  Its scores are only comparable within one form, so the
    #: learning memory refits a calibration per form
    prompt: str | None = None
    #: the quality gate that judged a local model's answer: ``learned`` (a calibration and
    #: threshold consolidation fitted and risk-controlled on this deployment's verified
    #: answers, :mod:`swarmd.memory.gate`) or ``shipped`` (the config's, fitted elsewhere, or a
    #: learned threshold lowered by budget pacing); ``None`` for API models and the answer cache
    gate: str | None = None
    #: the confidence the quality gate required of this answer (``accept_at``: the learned
    #: threshold, the configured one, or the budget-paced one); ``None`` for the answer cache
    #: and calls that gave no answer
    threshold: float | None = None

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
    the attempt whose answer is returned; ``escalations`` counts calls made to a
    further tier after an attempt that was not accepted; ``cost_usd`` (USD) and
    ``latency_ms`` (ms) add up every attempt; ``skipped`` lists models passed
    over because they were cooling down or refused by a budget, with the
    reason.  ``reason`` (unresolved only) is ``"budget"`` when a paid tier was
    refused by a budget, else a sentence.
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
    #: the same skips as ``skipped``, structured (:func:`skip_record`): one dict per model
    #: passed over, with ``tier, model, reason_kind, detail`` (and ``until``/``cap`` when known)
    skips: list[dict] = field(default_factory=list)

    @property
    def verification(self) -> str | None:
        """Whether the accepted answer's quality gate has shown its risk bound
        on this deployment (:func:`verification_of`): ``verified``,
        ``unverified`` or ``None`` (not accepted, or an API model's answer)."""
        return verification_of(self.status, self.tier, [asdict(a) for a in self.attempts])

    def to_json(self) -> dict:
        """The stable JSON shape: ``id, answer, confidence, tier, model, status,
        escalations, cost_usd, latency_ms`` (plus ``reason`` when unresolved,
        ``verification`` when accepted by a local model or the answer cache)."""
        out = {k: getattr(self, k) for k in ("id", "answer", "confidence", "tier", "model", "status",
                                              "escalations", "cost_usd", "latency_ms")}
        out["confidence"] = round(self.confidence, 4)
        out["latency_ms"] = round(self.latency_ms, 1)
        if self.reason:
            out["reason"] = self.reason
        if self.verification:
            out["verification"] = self.verification
        return out

    def attempts_json(self) -> list[dict]:
        """Every attempt as a dict (for persistence)."""
        return [asdict(a) for a in self.attempts]


#: ``reason_kind`` of a skipped model (:func:`skip_record`): why the router passed it over
SKIP_KINDS = ("unreachable", "no_api_key", "budget", "cooling_down", "strategy")


def skip_record(tier: str, model: ModelConfig, reason_kind: str, detail: str, **extra) -> dict:
    """One model the router passed over, as stored (``skipped`` of the objective):
    ``{"tier", "model", "provider", "reason_kind" (one of :data:`SKIP_KINDS`), "detail"
    (a sentence: the hosts and why for ``unreachable``, the cap for ``budget``), **extra}``;
    ``extra`` is ``until`` (unix seconds a cool-down ends) or ``cap`` (the budget scope that
    refused: ``daily``, ``monthly``, ``objective`` or ``unavailable``)."""
    assert reason_kind in SKIP_KINDS, reason_kind
    return {"tier": tier, "model": model.model, "provider": model.provider, "reason_kind": reason_kind,
            "detail": detail, **extra}


def unique_skips(skips: list[dict]) -> list[dict]:
    """``skips`` (:func:`skip_record` dicts) with one entry per (tier, provider, model,
    reason_kind), the first kept: what an objective that routed many requests (an agent's
    steps) stores as its ``skipped``."""
    seen: dict[tuple, dict] = {}
    for skip in skips:
        seen.setdefault((skip["tier"], skip["provider"], skip["model"], skip["reason_kind"]), skip)
    return list(seen.values())


def unavailable_kind(model: ModelConfig, reason: str) -> str:
    """``no_api_key`` when an API ``model`` is unavailable for want of a key (the
    provider's :class:`ProviderUnavailable` says so), else ``unreachable``."""
    return "no_api_key" if model.is_api and "API_KEY" in reason and reason.startswith("no ") else "unreachable"


def verification_of(status: str | None, tier: str | None, attempts: list[dict]) -> str | None:
    """``verified`` / ``unverified`` / ``None`` for an answer with ``status``
    and ``tier`` and its ``attempts`` (dicts of :class:`Attempt`, as stored):

    * ``verified`` — served by the answer cache (tier ``MEMORY``: verified
      answers), or accepted under a ``learned`` gate (its threshold was chosen
      by consolidation so that the 95% upper bound of its false-accept rate on
      this deployment's verified answers stays <= ``quality.max_false_accept``);
    * ``unverified`` — accepted under the ``shipped`` gate: a calibration fitted
      on another repository (or none), never checked on this deployment;
    * ``None`` — not accepted, an API model's answer, or attempts stored before
      gates were recorded."""
    if status not in ("accepted", "done"):
        return None
    if tier == MEMORY_TIER:
        return "verified"
    gate = next((a.get("gate") for a in attempts if a.get("outcome") == "accepted"), None)
    return {"learned": "verified", "shipped": "unverified"}.get(gate)


class Router:
    """Routes requests through the tiers of one :class:`~swarmd.config.Config`.

    ``ledger``: where calls are recorded (``None`` = not recorded).
    ``provider_factory``: builds a provider from a tier entry (tests and
    benchmarks may pass their own).  Providers are built on first use and kept
    for the life of the router, so an in-process model loads once.
    ``budget``: the shared caps (``None`` = unlimited, except an objective's
    ``max_cost_usd``, then checked within the one request; a
    :class:`~swarmd.costs.budgets.NoBudgetStore` refuses every priced call).  ``memory``: the
    learning memory: ``lookup(action, text, labels)`` → an answer-cache hit
    with ``answer`` and ``kind``, or ``None``, asked first for label outputs,
    and ``learned(action, labels)`` → (learned
    calibrations, ``{(model name, prompt form): threshold}``), which take precedence over the
    configured ones (:class:`swarmd.memory.gate.RouterMemory`); ``None`` = no
    learning memory.
    """

    def __init__(self, config: Config, ledger: Ledger | None = None,
                 provider_factory: Callable[[ModelConfig, float], Provider] = make_provider,
                 clock: Callable[[], float] = time.monotonic, budget: Budget | NoBudgetStore | None = None,
                 memory=None):
        self.config = config
        register_config(config)  # its API keys and passwords are masked in everything that leaves
        self.ledger = ledger
        self.budget = budget
        self.memory = memory
        self.provider_factory = provider_factory
        self.availability = Availability(config.escalation.cooldown_s, clock)
        self._providers: dict[str, Provider] = {}
        self._plans: dict[tuple[str, str], tuple[Config, list]] = {}
        #: objective id -> the skips of its requests, while :meth:`collecting_skips` runs for it
        self._skip_sinks: dict[str, list[dict]] = {}

    @contextmanager
    def collecting_skips(self, objective_id: str) -> Iterator[list[dict]]:
        """Within the block, every :meth:`route` / :meth:`route_many` result for
        ``objective_id`` adds its ``skips`` to the yielded list (in order, repeats kept:
        :func:`unique_skips` folds them).  How an objective that routes many requests (an
        agent: plan, steps, slot fills, verification) keeps every tier its requests skipped."""
        found: list[dict] = []
        self._skip_sinks[objective_id] = found
        try:
            yield found
        finally:
            self._skip_sinks.pop(objective_id, None)

    def _collected(self, objective_id: str | None, result: RouteResult) -> RouteResult:
        """``result``, its skips added to :meth:`collecting_skips`'s list for ``objective_id``."""
        sink = self._skip_sinks.get(objective_id) if objective_id is not None else None
        if sink is not None:
            sink.extend(result.skips)
        return result

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def model_key(tier: str, model: ModelConfig, index: int) -> str:
        """The key a model is known by in cool-downs and ``skipped``: ``tier/provider/model#index``
        (:func:`swarmd.router.reach.model_key`)."""
        return model_key(tier, model, index)

    def _provider(self, key: str, model: ModelConfig) -> Provider:
        if key not in self._providers:
            self._providers[key] = self.provider_factory(model, self.config.escalation.cooldown_s)
        return self._providers[key]

    def tier_state(self) -> dict:
        """What this router knows of its models, for tier health: ``{"built": [model keys
        (:meth:`model_key`) whose provider is built: for the in-process model, loaded],
        "cooling": {model key: {"until": unix s, "reason"}}}`` (:meth:`Availability.snapshot`)."""
        return {"built": sorted(self._providers), "cooling": self.availability.snapshot()}

    def warm_up(self) -> list[str]:
        """Build the starting tier's first provider now (for the in-process
        model: load it) rather than in the first request.  Returns the keys
        (:meth:`model_key`) of the providers built; a provider that fails to
        build is logged and skipped (the first request will try again)."""
        built = []
        for tier in self.config.escalation.chain[:1]:
            for index, model in enumerate(self.config.tiers[tier][:1]):
                key = self.model_key(tier, model, index)
                try:
                    self._provider(key, model)
                except Exception as exc:
                    logger.warning("warm-up of {} failed: {}", model.model, exc)
                else:
                    built.append(key)
        return built

    def check_request(self, action: str, labels: tuple[str, ...], strategy: str | None = None) -> None:
        """Raise :class:`RequestError` when ``action``/``labels``/``strategy``
        (``None``: the action's default) cannot be served."""
        if action not in self.config.actions:
            raise RequestError(f"unknown action {action!r}; supported: {', '.join(self.config.actions)}")
        output = self.config.actions[action].output
        if output in ("label", "labels"):
            if len(labels) < 2:
                raise RequestError(f"action {action!r} needs at least two labels")
            if len(set(labels)) != len(labels) or any(not l or not l.strip() or "," in l for l in labels):
                raise RequestError("labels must be distinct, non-empty and contain no commas")
        if strategy is not None:
            self._plan(action, strategy)

    def _plan(self, action: str, strategy: str) -> list[tuple[str, list[tuple[int, ModelConfig]]]]:
        """:meth:`Config.plan` of ``action`` under ``strategy``, kept per config;
        raises :class:`RequestError` for a strategy the config cannot serve."""
        cached = self._plans.get((action, strategy))
        if cached is None or cached[0] is not self.config:
            problem = self.config.strategy_problem(action, strategy)
            if problem is not None:
                raise RequestError(f"strategy {strategy!r} for action {action!r}: expected {problem}")
            cached = self._plans[(action, strategy)] = (self.config, self.config.plan(action, strategy))
        return cached[1]

    # ------------------------------------------------------------------ routing
    def route(self, action: str, text: str, labels: tuple[str, ...] | list[str] = (),
              objective_id: str | None = None, request_id: str | None = None,
              max_cost_usd: float | None = None, strategy: str | None = None,
              should_stop: Callable[[], bool] | None = None) -> RouteResult:
        """Answer one request, escalating while confidence < threshold.

        ``max_cost_usd``: the objective's cap in USD (with a budget, across all
        of ``objective_id``'s calls; without one, within this request).
        ``strategy``: which models may answer and in what order
        (:data:`swarmd.config.STRATEGIES`; ``None``: the action's
        ``strategy``, ``cascade`` unless configured): the tiers of
        :meth:`Config.plan`, escalating from one to the next as in a cascade,
        except that under ``local_fallback`` the local tiers are tried only
        when no API model answered (unavailable, failed or refused by a budget).
        Returns a :class:`RouteResult`.  Raises :class:`RequestError` only for a
        bad request (unknown action, missing labels), never for a model failure
        nor a budget (a refused call is skipped; see the module docstring).
        ``should_stop``: asked (no arguments, cheap) before each call after the
        first one made; ``True`` ends the request ``unresolved`` with reason
        :data:`STOPPED` and the attempts made so far (the worker passes "was the
        objective cancelled": the router knows no queue).
        """
        return self._collected(objective_id, self._route(action, text, labels, objective_id, request_id,
                                                         max_cost_usd, strategy, should_stop=should_stop))

    def route_many(self, action: str, texts: list[str], labels: tuple[str, ...] | list[str] = (),
                   request_ids: list[str | None] | None = None, objective_ids: list[str | None] | None = None,
                   max_cost_usd: float | None = None, strategy: str | None = None,
                   should_stop: list[Callable[[], bool] | None] | None = None) -> list[RouteResult]:
        """:meth:`route` of each of ``texts`` (one action, one label set), with
        the first model of the plan asked for all of them at once when it can
        answer a batch (``classify_batch``: the in-process llama.cpp model
        decodes the bodies together, sharing the prefix's KV state) and is free
        and not cooling down.  Each text is otherwise routed on its own:
        memory lookup first, its own escalation, ledger rows and result, as
        :meth:`route` gives it (the batched answers equal the one-by-one
        ones).  ``request_ids``/``objective_ids``: one per text (default
        ``None``).  ``should_stop``: one per text (or ``None``), as :meth:`route`'s, and also
        asked before the text is routed at all: a text stopped then gets a :data:`STOPPED`
        result with no attempt (its batched answer, if any, is not used, recorded nor charged).
        Returns one :class:`RouteResult` per text, in order.
        Raises :class:`RequestError` for a bad request."""
        labels = tuple(labels)
        self.check_request(action, labels)
        strategy = strategy or self.config.actions[action].strategy
        plan = self._plan(action, strategy)
        n = len(texts)
        request_ids, objective_ids = request_ids or [None] * n, objective_ids or [None] * n
        stops = should_stop or [None] * n
        results: list[RouteResult | None] = [None] * n

        def stopped(i: int) -> bool:      # the caller said stop (a cancelled objective): not routed
            if stops[i] is None or not stops[i]():
                return False
            results[i] = self._result(None, [], [], UNRESOLVED, STOPPED, request_ids[i])
            return True
        live = [i for i in range(n) if not stopped(i)]
        if self._uses_memory(action):
            for i in live:
                results[i] = self._from_memory(action, texts[i], labels, objective_ids[i], request_ids[i])
        todo = [i for i in live if results[i] is None]
        ahead: dict[int, dict] = {}
        prepared: dict[int, tuple] = {}
        batcher = self._batcher(action, plan) if len(todo) > 1 else None
        if batcher is not None:
            key, model, provider = batcher
            prepared = {i: self._prepare(action, texts[i], labels, plan) for i in todo}
            got = provider.classify_batch([self._model_prompt(prepared[i][0], prepared[i][2], model, labels)
                                           for i in todo])
            ahead = {i: {key: g} for i, g in zip(todo, got)}
        for i in todo:
            if ahead and stopped(i):         # stopped while the batch was answered
                continue
            results[i] = self._route(action, texts[i], labels, objective_ids[i], request_ids[i], max_cost_usd,
                                     strategy, ahead.get(i), use_memory=False, prepared=prepared.get(i),
                                     should_stop=stops[i])
        return [self._collected(oid, r) for oid, r in zip(objective_ids, results)]

    def batches(self, action: str, strategy: str | None = None) -> bool:
        """Whether :meth:`route_many` would ask the first model of ``action``'s
        plan under ``strategy`` (``None``: the action's default) for several
        texts at once now: a label or yes/no action whose first model is free,
        not cooling down and answers batches (``classify_batch``).  Builds
        that model's provider if needed (for the in-process model: loads it).
        Unknown actions and strategies the config cannot serve give ``False``."""
        try:
            return self._batcher(action, self._plan(action, self.config.strategy_of(action, strategy))) is not None
        except (KeyError, RequestError):
            return False

    def _batcher(self, action: str, plan: list) -> tuple[str, ModelConfig, Provider] | None:
        """``(model key, model, provider)`` of the plan's first model when it
        can answer a batch of ``action``'s requests (see :meth:`batches`), else ``None``."""
        if self.config.actions[action].output not in BATCHED_OUTPUTS or not plan:
            return None
        tier, [(index, model), *_] = plan[0]
        key = self.model_key(tier, model, index)
        if not model.is_free or self.availability.down_reason(key) is not None:
            return None
        try:
            provider = self._provider(key, model)
        except ProviderUnavailable as exc:
            self.availability.mark_down(key, str(exc))
            return None
        return (key, model, provider) if hasattr(provider, "classify_batch") else None

    def _prompt(self, action: str, text: str, labels: tuple[str, ...]) -> tuple[Prompt, dict[str, float], tuple]:
        """The request's prompt (with the learning memory's calibrations, if
        any), the learned thresholds per (model, prompt form) and the learned calibrations."""
        prompt = build_prompt(self.config.actions[action], redact(text), labels)  # no secret reaches a model
        learned_cals, learned_thresholds = self._learned_gate(action, labels)
        if learned_cals:        # first match wins in the provider: learned before shipped
            prompt = replace(prompt, calibration=learned_cals + tuple(prompt.calibration))
        return prompt, learned_thresholds, learned_cals

    def _uses_memory(self, action: str) -> bool:
        """True when ``action``'s answers go through the learning memory
        (answer cache, retrieved examples): a memory and a cached output kind."""
        return self.memory is not None and self.config.actions[action].output in CACHED_OUTPUTS

    def _prepare(self, action: str, text: str, labels: tuple[str, ...], plan: list) -> tuple[Prompt, dict[str, float],
                                                                                               Prompt | None]:
        """What :meth:`_route` asks the models of ``plan`` (:meth:`_plan`) with:
        the request's prompt (:meth:`_prompt`), the learned thresholds per
        (model, prompt form) and the prompt with retrieved examples (``None``:
        none; :meth:`_retrieved_prompt`).  One learned-gate read per request,
        and one retrieval when a model of ``plan`` would be asked with its
        examples (:meth:`_takes_retrieved`), none otherwise."""
        prompt, learned_thresholds, learned_cals = self._prompt(action, text, labels)
        retrieved = None
        if self._uses_memory(action) and any(self._takes_retrieved(model, prompt.calibration, labels)
                                             for _tier, models in plan for _index, model in models):
            retrieved = self._retrieved_prompt(action, text, labels, learned_cals)
        return prompt, learned_thresholds, retrieved

    @staticmethod
    def _takes_retrieved(model: ModelConfig, calibration, labels) -> bool:
        """Whether ``model`` is asked the prompt with retrieved examples when
        there is one: a local model with a calibration of ``calibration``
        (learned, then shipped: the request prompt's) fitted on that form."""
        return not model.is_api and any(c.applies(model.model, labels, "retrieved") for c in calibration)

    @classmethod
    def _model_prompt(cls, prompt: Prompt, retrieved: Prompt | None, model: ModelConfig, labels) -> Prompt:
        """The prompt ``model`` is asked: the one with retrieved examples when
        :meth:`_takes_retrieved`, else ``prompt``."""
        if retrieved is not None and cls._takes_retrieved(model, retrieved.calibration, labels):
            return retrieved
        return prompt

    def _route(self, action, text, labels, objective_id, request_id, max_cost_usd, strategy,
               answered: dict | None = None, use_memory: bool = True, prepared: tuple | None = None,
               should_stop: Callable[[], bool] | None = None) -> RouteResult:
        """:meth:`route`; ``answered``: ``{model key: Completion or the
        provider error}`` already obtained for this request (by a batch call),
        used instead of calling that model; ``use_memory=False``: the answer
        cache was asked already; ``prepared``: this request's :meth:`_prepare`,
        already computed (for that batch call)."""
        labels = tuple(labels)
        self.check_request(action, labels)
        strategy = strategy or self.config.actions[action].strategy
        plan = self._plan(action, strategy)
        if use_memory and self._uses_memory(action):
            cached = self._from_memory(action, text, labels, objective_id, request_id)
            if cached is not None:
                return cached
        prompt, learned_thresholds, retrieved = prepared or self._prepare(action, text, labels, plan)
        threshold = self.config.quality.threshold_for(action)
        refusals = tuple(self.config.quality.refusal_phrases)
        attempts: list[Attempt] = []
        skipped: list[str] = []
        skips: list[dict] = self._excluded(action, strategy, plan)
        best: tuple[Verdict, Attempt] | None = None
        pending: Attempt | None = None      # not accepted: "escalated" once a further call is made
        refused_by_budget = False
        api_answered = False

        for stage, (tier, models) in enumerate(plan):
            if api_answered and strategy == "local_fallback" and not models[0][1].is_api:
                break                           # the API answered: local tiers are only its fallback
            for model_index, model in models:
                key = self.model_key(tier, model, model_index)
                reason = self.availability.down_reason(key)
                if reason is not None:
                    skipped.append(f"{key}: {reason}")
                    skips.append(skip_record(tier, model, "cooling_down", reason,
                                             until=round(self.availability.down_until(key), 3)))
                    continue
                if attempts and should_stop is not None and should_stop():   # before an escalation
                    if pending is not None:
                        self._record(action, pending, objective_id)
                    logger.info("{} stopped before {} (its caller said stop)", request_id or action, key)
                    return self._result(best, attempts, skipped, UNRESOLVED, STOPPED, request_id, skips)
                reservation = None
                model_prompt = self._model_prompt(prompt, retrieved, model, labels)
                if not model.is_free:
                    reservation = self._reserve(model, model_prompt, objective_id, max_cost_usd,
                                                sum(a.cost_usd for a in attempts))
                    if not isinstance(reservation, Reservation) and reservation is not None:
                        skipped.append(f"{key}: budget: {reservation}")
                        skips.append(skip_record(tier, model, "budget", str(reservation),
                                                 cap=getattr(reservation, "scope", "objective")))
                        refused_by_budget = True
                        continue
                accept_at = learned_thresholds.get((model.model, model_prompt.form), threshold)
                if model.is_free and self.budget is not None and self._next_is_paid(plan, stage):
                    accept_at = self.budget.pacing_threshold(accept_at, action)
                attempt = verdict = None
                try:
                    attempt, verdict = self._call(action, tier, model, key, model_prompt, refusals, accept_at,
                                                  (answered or {}).pop(key, None))
                finally:                        # settled to the cost, or released when no call was made
                    self._settle(reservation, attempt)
                if attempt is not None and not model.is_api:
                    learned = learned_thresholds.get((model.model, model_prompt.form))
                    attempt.gate = "learned" if learned is not None and accept_at >= learned else "shipped"
                if attempt is None:          # unavailable: try the tier's next model
                    why = self.availability.down_reason(key) or "unavailable"
                    skipped.append(f"{key}: {why}")
                    skips.append(skip_record(tier, model, unavailable_kind(model, why), why))
                    continue
                if pending is not None:
                    pending.outcome = "escalated"
                    self._record(action, pending, objective_id)
                    pending = None
                attempts.append(attempt)
                api_answered = api_answered or (model.is_api and attempt.outcome != "error")
                if verdict is not None and (best is None or verdict.confidence > best[0].confidence):
                    best = (verdict, attempt)
                if attempt.outcome == "accepted":     # the accepted answer, even if a rejected one was surer
                    self._record(action, attempt, objective_id)
                    return self._result((verdict, attempt), attempts, skipped, ACCEPTED, None, request_id, skips)
                if attempt.outcome == "error":
                    self._record(action, attempt, objective_id)
                else:
                    attempt.outcome = "rejected"    # until a further call is made
                    pending = attempt
                break                           # a model answered in this tier: escalate
        if pending is not None:
            self._record(action, pending, objective_id)
        if refused_by_budget:
            reason = BUDGET
            logger.info("{} unresolved: budget (best confidence {:.2f} < {:.2f}; {})", request_id or action,
                        best[0].confidence if best else 0.0, threshold,
                        "; ".join(s for s in skipped if ": budget: " in s))
        else:
            reason = (f"no tier reached confidence {threshold:.2f}" if attempts
                      else "every tier unavailable")
        return self._result(best, attempts, skipped, UNRESOLVED, reason, request_id, skips)

    def _excluded(self, action: str, strategy: str, plan: list) -> list[dict]:
        """:func:`skip_record` (``strategy``) of each model of ``action``'s chain that
        ``plan`` (its plan under ``strategy``) leaves out."""
        planned = {(tier, index) for tier, models in plan for index, _m in models}
        return [skip_record(tier, model, "strategy", f"excluded by strategy {strategy!r}")
                for tier in self.config.chain_from(action)
                for index, model in enumerate(self.config.tiers.get(tier, ()))
                if (tier, index) not in planned]

    def ask_paid_after(self, action: str, text: str, labels, tier: str, objective_id: str | None = None,
                       max_cost_usd: float | None = None) -> Attempt | None:
        """One call to the first available priced model in a tier after
        ``tier`` in ``action``'s chain, for a calibration audit
        (:mod:`swarmd.memory.audit`): budgets reserved and settled as in
        :meth:`route`, the answer scored by the gate, the ledger written with
        outcome ``audit``; never escalates.  Returns the :class:`Attempt`, or
        ``None`` when no priced model follows, every one is cooling down, or a
        budget refuses the call (logged).  Raises :class:`RequestError` for a
        bad request."""
        labels = tuple(labels)
        self.check_request(action, labels)
        prompt = build_prompt(self.config.actions[action], text, labels)
        chain = self.config.chain_from(action)
        later = chain[chain.index(tier) + 1:] if tier in chain else []
        for t in later:
            for index, model in enumerate(self.config.tiers[t]):
                key = self.model_key(t, model, index)
                if model.is_free or self.availability.down_reason(key) is not None:
                    continue
                reservation = self._reserve(model, prompt, objective_id, max_cost_usd, 0.0)
                if reservation is not None and not isinstance(reservation, Reservation):
                    logger.info("audit of {} not made: budget: {}", objective_id or action, reservation)
                    return None
                attempt = None
                try:
                    attempt, _verdict = self._call(action, t, model, key, prompt, tuple(self.config.quality.refusal_phrases),
                                                   self.config.quality.threshold_for(action))
                finally:
                    self._settle(reservation, attempt)
                if attempt is not None:
                    if attempt.outcome != "error":
                        attempt.outcome = "audit"
                    self._record(action, attempt, objective_id)
                    return attempt
        return None

    def _learned_gate(self, action: str, labels: tuple[str, ...]) -> tuple[tuple, dict[str, float]]:
        """The learning memory's calibrations and thresholds per (model, prompt form) for this
        request (none without a memory, or when reading it fails: logged)."""
        if self.memory is None:
            return (), {}
        try:
            return self.memory.learned(action, labels)
        except Exception:
            logger.exception("learned gate unavailable; using the configured one")
            return (), {}

    def _retrieved_prompt(self, action: str, text: str, labels: tuple[str, ...], learned_cals: tuple):
        """The prompt with the learning memory's retrieved examples after the
        cached prefix (``memory.examples``), or ``None`` without examples or
        when retrieval fails (logged; the fixed prompt is used)."""
        text = redact(text)  # no secret reaches a model (secrets.py)
        examples_of = getattr(self.memory, "examples", None)
        if examples_of is None:
            return None
        try:
            examples = examples_of(action, text, labels)
        except Exception:
            logger.exception("retrieval of verified examples failed; using the fixed prompt")
            return None
        if not examples:
            return None
        prompt = build_prompt(self.config.actions[action], text, labels, examples)
        return replace(prompt, calibration=learned_cals + tuple(prompt.calibration)) if learned_cals else prompt

    def _from_memory(self, action, text, labels, objective_id, request_id) -> RouteResult | None:
        """The answer cache's result (tier ``MEMORY``, cost 0, confidence 1), or
        ``None`` on a miss or when the cache fails (logged; routing goes on)."""
        start = time.perf_counter()
        try:
            hit = self.memory.lookup(action, text, labels)
        except Exception:
            logger.exception("answer cache lookup failed; routing without it")
            return None
        if hit is None:
            return None
        attempt = Attempt(MEMORY_TIER, "memory", hit.kind, hit.answer, 1.0, 0, 0, 0.0,
                          (time.perf_counter() - start) * 1000, "accepted")
        self._record(action, attempt, objective_id)
        return self._result((Verdict(hit.answer, 1.0), attempt), [attempt], [], ACCEPTED, None, request_id)

    # ------------------------------------------------------------------ budgets
    def _next_is_paid(self, plan: list, stage: int) -> bool:
        """True when the model that would answer after ``plan[stage]`` (the
        first one not cooling down in the next tier of the plan that has one)
        has a price."""
        for tier, models in plan[stage + 1:]:
            for index, model in models:
                if self.availability.down_reason(self.model_key(tier, model, index)) is None:
                    return not model.is_free
        return False

    def _reserve(self, model: ModelConfig, prompt: Prompt, objective_id: str | None,
                 max_cost_usd: float | None, spent_usd: float):
        """Hold the worst case of one call to a priced ``model``: a
        :class:`Reservation`, ``None`` (no budget to hold it on, allowed) or a
        refusal (anything else; its ``str`` says why)."""
        label = prompt.output in ("label", "yes_no")      # answered by provider.classify
        amount = worst_case_usd(model, prompt.text, LABEL_MAX_TOKENS if label else None)
        if self.budget is not None:
            return self.budget.try_reserve(amount, objective_id, max_cost_usd,
                                           lease_s=3 * model.timeout_s + 60)
        if max_cost_usd is not None and spent_usd + amount > max_cost_usd:
            return (f"objective cap ${max_cost_usd:.4f}: ${spent_usd:.6f} spent in this request, "
                    f"this call may cost up to ${amount:.6f}")
        return None

    def _settle(self, reservation, attempt: Attempt | None) -> None:
        """Settle a reservation to the attempt's cost, or release it (no call made)."""
        if not isinstance(reservation, Reservation):
            return
        try:
            if attempt is None:
                self.budget.release(reservation)
            else:
                self.budget.settle(reservation, attempt.cost_usd)
        except Exception:
            logger.exception("budget: could not settle reservation {} (released at its lease deadline)",
                             reservation.id)

    def _call(self, action, tier, model, key, prompt, refusals, threshold, answered=None):
        """One model call → (Attempt, Verdict) or (None, None) when unavailable.
        ``answered``: the call's outcome obtained already (a :class:`Completion`
        or the provider error it raised), used instead of calling again."""
        start = time.perf_counter()
        try:
            if isinstance(answered, Exception):
                raise answered
            if answered is not None:
                completion = answered
            else:
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
                          outcome, verdict.problem, scores=completion.extra.get("label_logprobs"), prompt=prompt.form,
                          threshold=threshold)
        return attempt, verdict

    def _record(self, action: str, a: Attempt, objective_id: str | None) -> None:
        telemetry.chat_span(a.tier, a.provider, a.model, a.tokens_in, a.tokens_out, a.latency_ms, a.confidence,
                            a.cost_usd, a.outcome, a.error, a.threshold, end_s=a.ts)
        if self.ledger is None:
            return
        try:
            self.ledger.record(a.ledger_row(action, objective_id))
        except Exception:
            logger.exception("could not write the cost ledger row")

    @staticmethod
    def _result(best, attempts, skipped, status, reason, request_id, skips=()) -> RouteResult:
        verdict, attempt = best if best else (None, None)
        return RouteResult(
            answer=verdict.answer if verdict else None,
            confidence=verdict.confidence if verdict else 0.0,
            tier=attempt.tier if attempt else None,
            model=attempt.model if attempt else None,
            status=status, escalations=max(0, len(attempts) - 1),   # each further call follows a rejected one
            cost_usd=sum(a.cost_usd for a in attempts),
            latency_ms=sum(a.latency_ms for a in attempts),
            attempts=attempts, skipped=skipped, reason=reason, id=request_id, skips=list(skips))

    def close(self) -> None:
        """Close every provider."""
        for provider in self._providers.values():
            try:
                provider.close()
            except Exception:
                logger.exception("closing provider failed")
        self._providers.clear()
