"""Loading and validating ``llm_config.yaml``.

The configuration is parsed with PyYAML and validated with pydantic models that
forbid unknown keys.  Every error names the file, the line (from the YAML node
marks), the dotted key path, what was expected and what was found, e.g.::

    llm_config.yaml:23: tiers.LOCAL_FAST[0].price_per_mtok_in: expected a number >= 0, found -1

Environment variables override secrets and hosts (see :func:`load_config`).
Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr`` or logs.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from swarmd.validation import InputError, Invalid, YamlDoc, parse_yaml, read_yaml, short, validate_yaml

DEFAULT_CONFIG_NAME = "llm_config.yaml"
#: Routing strategies (``actions.<a>.strategy``, an objective's ``strategy``):
#: ``cascade`` the escalation chain from the action's tier on; ``local_only``
#: its local models only; ``api_only`` its API models only; ``local_fallback``
#: its API models first, its local models only when no API model answered
#: (unavailable, cooling down, failed, or refused by a budget).
Strategy = Literal["cascade", "local_only", "api_only", "local_fallback"]
STRATEGIES = get_args(Strategy)
#: the action of free-text objectives (run by the agent loop)
AGENT_ACTION = "agent"
#: the action that plans an agent objective (:mod:`swarmd.agent.planner`)
PLAN_ACTION = "plan"
#: the action whose (small) model copies free-text slot values from a goal (:mod:`swarmd.agent.follower`)
FILL_ACTION = "fill_slot"
#: the action whose model (the learner tier) verifies a supervised replay's outcome (``yes_no``)
VERIFY_ACTION = "verify_trace"
#: what each action an agent objective's model calls go through does for it: every one is
#: routed with the objective's ``strategy``, so each configured one must be able to serve it
AGENT_ROUTED = {AGENT_ACTION: "steps", PLAN_ACTION: "plan", FILL_ACTION: "slot fills",
                VERIFY_ACTION: "verification of a replay"}
#: Providers that are remote APIs (every other provider runs on hardware of
#: one's own: in-process, Ollama, echo).
API_PROVIDERS = ("anthropic",)


class ConfigError(InputError):
    """A configuration file that cannot be used: every problem found, each
    with file, line, dotted key path, expected and found (see
    :class:`swarmd.validation.InputError` for the attributes)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


#: the prompt forms a local model is asked in (:attr:`swarmd.router.providers.base.Prompt.form`):
#: ``fixed``, or ``retrieved`` with retrieved verified examples
PromptForm = Literal["fixed", "retrieved"]


class LabelCalibration(_Strict):
    """How one ``model``'s label scores become an answer and a confidence, for
    one action and one label set (fitted by ``bench/classify.py
    --fit-calibration`` on commit messages 0-299; see ``llm_config.yaml``).

    * Answer: the label with the highest ``q``, where ``q`` is the softmax over
      the label set of ``scale · ln p(label) + bias[label]`` and ``p`` is the
      model's next-token probability of the label over its whole vocabulary.
      ``bias`` corrects the model's prior towards some labels (contextual
      calibration, fitted by maximum likelihood on labelled examples).
    * Confidence: ``1 / (1 + exp(-(slope · ln q(answer) + intercept +
      label_intercept[answer])))`` (Platt scaling, with an intercept per answer
      label because a small model is reliable on some labels and not others).

    With a ``bias`` the calibration applies only when the label set is
    exactly its labels; without one it applies to any label set. Labels absent
    from ``label_intercept`` get 0.  The prompt carries an action's
    calibrations to the provider (:class:`swarmd.router.providers.base.Prompt`),
    which calls :meth:`applies`, :meth:`adjust` and :meth:`confidence`.
    """

    model: str
    slope: float
    intercept: float
    scale: float = Field(1.0, gt=0)
    bias: dict[str, float] = Field(default_factory=dict)
    label_intercept: dict[str, float] = Field(default_factory=dict)
    #: the prompt form whose scores it was fitted on: ``fixed`` (instruction and
    #: the action's examples) or ``retrieved`` (the same plus retrieved verified
    #: examples, :mod:`swarmd.memory.retrieval`); a model scores the two differently
    prompt: PromptForm = "fixed"

    def applies(self, model: str, labels: tuple[str, ...], prompt: str = "fixed") -> bool:
        """True for the model it was fitted for, the prompt form it was fitted
        on and, when it has a ``bias``, exactly the label set it was fitted on (any order)."""
        return model == self.model and prompt == self.prompt and (not self.bias or set(labels) == set(self.bias))

    def adjust(self, logprobs: dict[str, float]) -> dict[str, float]:
        """``scale · ln p + bias`` per label (unnormalised log-scores)."""
        return {label: self.scale * lp + self.bias.get(label, 0.0) for label, lp in logprobs.items()}

    def confidence(self, label: str, ln_q: float) -> float:
        """Platt-scaled confidence in [0, 1] of answer ``label`` whose
        within-set log-probability after adjustment is ``ln_q`` (<= 0)."""
        z = self.slope * ln_q + self.intercept + self.label_intercept.get(label, 0.0)
        return float(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))))


class ModelConfig(_Strict):
    """One model of a tier: which backend serves it and what it costs.

    Prices are USD per **million** tokens (Anthropic and OpenAI publish prices
    this way); ``timeout_s`` is seconds for one call.
    """

    provider: Literal["llama_cpp", "ollama", "anthropic", "echo"]
    model: str = Field(min_length=1)
    price_per_mtok_in: float = Field(ge=0)
    price_per_mtok_out: float = Field(ge=0)
    context_window: int = Field(gt=0)
    timeout_s: float = Field(gt=0)
    max_output_tokens: int = Field(default=256, gt=0)
    path: str | None = None
    #: llama_cpp with ``path: null`` only: the weights' quantization.  ``q4_k_m`` (or unset) loads the
    #: packaged GGUF as it is; ``q8_0`` loads a copy requantized from it to Q8_0 on first use
    #: (:func:`swarmd.router.providers.llama_cpp.embedded_model_path`), which on these 2 cores
    #: (AVX without AVX2) classified 1.15x faster, batched and one by one, with the same accuracy
    #: (``bench/quantization.py``).
    quantization: Literal["q4_k_m", "q8_0"] | None = None
    n_threads: int | None = Field(default=None, gt=0)
    label_temperature: float = Field(default=1.0, gt=0)
    hosts: list[str] = Field(default_factory=list)
    api_key: SecretStr | None = None
    base_url: str | None = None
    prior_confidence: float = Field(default=0.9, ge=0, le=1)

    @model_validator(mode="after")
    def _provider_fields(self) -> "ModelConfig":
        if self.provider == "ollama" and not self.hosts:
            raise Invalid((("hosts",), "at least one Ollama host URL for provider ollama", short(self.hosts)))
        if self.quantization is not None and (self.provider != "llama_cpp" or self.path is not None):
            raise Invalid((("quantization",), "null: a quantization applies only to provider llama_cpp with path "
                           "null (the embedded model); quantize your own GGUF with llama.cpp's llama-quantize",
                           short(self.quantization)))
        return self

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """Cost of one call in USD: tokens × price per million tokens / 1e6."""
        return (tokens_in * self.price_per_mtok_in + tokens_out * self.price_per_mtok_out) / 1_000_000

    @property
    def is_api(self) -> bool:
        """True for a remote API model (provider in :data:`API_PROVIDERS`), False for a local one."""
        return self.provider in API_PROVIDERS

    @property
    def is_free(self) -> bool:
        """True when a call to this model costs nothing (both prices are 0)."""
        return self.price_per_mtok_in == 0 and self.price_per_mtok_out == 0


class Example(_Strict):
    """A hand-written few-shot demonstration: an input and its answer."""

    input: str
    answer: str


class ActionConfig(_Strict):
    """An action: starting tier, prompt template and output kind.

    The prompt is ``instruction`` + examples rendered with ``item`` + the input
    rendered with ``item``; ``item`` must contain ``{input}``.  The input's
    whitespace is folded and it is cut at ``input_max_chars`` characters in the
    prompt (every new prompt token costs the embedded model ~5 ms on 2 cores).
    """

    tier: str
    output: Literal["label", "labels", "yes_no", "json", "text", "code"]
    instruction: str
    item: str
    examples: list[Example] = Field(default_factory=list)
    input_max_chars: int = Field(default=4000, gt=0)
    label_calibration: list[LabelCalibration] = Field(default_factory=list)
    #: the routing strategy of this action's objectives that do not name one
    strategy: Strategy = "cascade"

    @field_validator("item")
    @classmethod
    def _item_has_input(cls, item: str) -> str:
        if "{input}" not in item:
            raise Invalid(((), "a template containing {input}", short(item)))
        return item


class QualityConfig(_Strict):
    """Quality gate: accept when confidence >= threshold (0..1)."""

    threshold: float = Field(default=0.7, ge=0, le=1)
    per_action: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    refusal_phrases: list[str] = Field(default_factory=list)
    #: target of the learned gate (:mod:`swarmd.memory.consolidate`): the 95% upper
    #: bound of the false-accept rate of locally accepted answers stays at or below it
    max_false_accept: float = Field(default=0.15, gt=0, lt=1)

    def threshold_for(self, action: str) -> float:
        """The acceptance threshold for ``action`` (per-action override or the default)."""
        return self.per_action.get(action, self.threshold)


class EscalationConfig(_Strict):
    """The cascade order and how long (seconds) an unreachable model is skipped."""

    chain: list[str] = Field(min_length=1)
    cooldown_s: float = Field(default=60, ge=0)


class PacingConfig(_Strict):
    """Budget pacing (see :mod:`swarmd.costs.budgets`).

    A capped period (UTC day, UTC month) is *ahead of plan* when
    ``spent / cap > elapsed / period + tolerance``.  While any capped period
    is ahead, an answer from a free tier whose next tier is paid escalates
    only when its confidence is below ``threshold × threshold_factor``
    (instead of ``threshold``); back on plan, the configured threshold
    returns.  ``tolerance`` and ``threshold_factor`` are fractions (0..1).
    """

    enabled: bool = True
    tolerance: float = Field(default=0.05, ge=0, le=1)
    threshold_factor: float = Field(default=0.5, gt=0, le=1)


class BudgetConfig(_Strict):
    """Daily and monthly spending caps in USD (``None`` = no cap), enforced in
    Redis across every worker (UTC day and month), and their pacing."""

    daily_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)
    pacing: PacingConfig = PacingConfig()


class ReportsConfig(_Strict):
    """The daemon's daily cost report: ``daily_at`` local time ``"HH:MM"``
    (``None`` = no daily report) covering the 24 hours before it; written
    under ``dir`` (relative to the data directory unless absolute)."""

    daily_at: str | None = "23:55"
    dir: str = Field(default="reports", min_length=1)

    @field_validator("daily_at")
    @classmethod
    def _hh_mm(cls, value: str | None) -> str | None:
        if value is None:
            return value
        hh, sep, mm = value.partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
            raise Invalid(((), "a local time \"HH:MM\" (24-hour clock) or null", short(value)))
        return value


class MetricsConfig(_Strict):
    """Prometheus metrics served by the daemon on ``127.0.0.1:port``
    (``None`` = off).  ``refresh_s``: seconds between reads of new ledger rows."""

    port: int | None = Field(default=None, ge=1, le=65535)
    refresh_s: float = Field(default=5.0, gt=0)


class ApiConfig(_Strict):
    """The HTTP API and dashboard (:mod:`swarmd.api`), served by ``swarmd`` on a
    unix socket in the data directory and on TCP at ``listen`` (``"HOST:PORT"``;
    ``None`` = no TCP; port 0 = any free port, written to ``<data dir>/api.url``).
    A ``listen`` host that is not loopback is refused unless ``allow_remote``
    (then put TLS in front of it: the API speaks plain HTTP)."""

    listen: str | None = "127.0.0.1:8765"
    allow_remote: bool = False

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str | None) -> str | None:
        if listen is None:
            return None
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise Invalid(((), "HOST:PORT (port 0-65535) or null", short(listen)))
        return listen


class MemoryConfig(_Strict):
    """The learning memory (:mod:`swarmd.memory`): verified outcomes in the store.

    ``cache``: answer verified inputs again from memory (tier ``MEMORY``).
    ``audit_rate``: probability (0..1) that an answer accepted at a free tier is
    also asked of the next paid tier after the result is reported.
    ``consolidate_at``: local time ``"HH:MM"`` of the daily consolidation
    (``None`` = only ``swarmctl memory consolidate``).  ``max_records``: records
    kept after pruning by value.  ``min_verified``: verified records of one
    (action, label set, model) below which the shipped calibration stays.
    ``qdrant_url``: Qdrant for retrieval across hosts (``None`` = embedded index).
    ``retrieval_examples``: verified examples retrieved (``retrieval_mode``) into a
    local model's label prompt after its cached prefix, used only for a model
    with a ``label_calibration`` fitted on that prompt form (``prompt:
    retrieved``: shipped for Gemma 3 270M in ``llm_config.yaml``, or learned by
    consolidation, which refits each prompt form from the verified records
    scored in it); 0 = none.  The daemon embeds new verified records into the
    vector index every 10 s (mode ``bm25`` needs none).  Measured by
    ``bench/retrieval.py --gemma`` (held-out commit messages) and
    ``bench/learning.py`` (the learning loop, arm ``on+R``).
    """

    cache: bool = True
    audit_rate: float = Field(default=0.05, ge=0, le=1)
    consolidate_at: str | None = "03:30"
    max_records: int = Field(default=100_000, gt=0)
    min_verified: int = Field(default=100, gt=0)
    qdrant_url: str | None = None
    retrieval_examples: int = Field(default=0, ge=0, le=16)
    retrieval_mode: Literal["vector", "bm25", "hybrid"] = "bm25"

    @field_validator("consolidate_at")
    @classmethod
    def _hh_mm(cls, value: str | None) -> str | None:
        return ReportsConfig._hh_mm(value)


class TracesConfig(_Strict):
    """Execution traces (:mod:`swarmd.agent.traces`): agent objectives a strong
    tier solved are stored as traces and replayed without a model (follower mode).

    ``enabled``: learn and follow traces.  ``follow_threshold``: the confidence
    (0..1) a trace needs to be followed; ``min_success_rate``: its success rate
    must be above this (both defaults are the learner-follower pattern's
    published thresholds).  ``supervise_from``: the confidence (0..1) from
    which a trace below ``follow_threshold`` is still replayed, **supervised**:
    the learner tier then verifies the replay's outcome with one short call
    (action ``verify_trace``) before the objective is done
    (:mod:`swarmd.agent.follower`); default 0.75, the confidence of a new
    trace (:data:`swarmd.agent.traces.NEW_CONFIDENCE`), so a trace is
    replayed from its first match on; ``null``: never supervised, a trace
    below the threshold is not replayed.  ``min_similarity``: cosine similarity (0..1) of the
    ``tokens-v1`` goal representations, parameters masked, for a trace to match
    a goal; ``min_embedding_similarity``: the same for the MiniLM embedding
    (default from the similarities measured in :data:`swarmd.agent.traces.MIN_EMBEDDING_SIMILARITY`).
    """

    enabled: bool = True
    follow_threshold: float = Field(default=0.9, ge=0, le=1)
    supervise_from: float | None = Field(default=0.75, ge=0, le=1)
    min_success_rate: float = Field(default=0.85, ge=0, le=1)
    min_similarity: float = Field(default=0.8, gt=0, le=1)
    min_embedding_similarity: float = Field(default=0.92, gt=0, le=1)


class StorageConfig(_Strict):
    """SQLite store path, relative to the data directory unless absolute."""

    db: str = "memory.db"


class LogConfig(_Strict):
    """Daemon log file (loguru): path relative to the data dir, rotation
    (size such as ``"20 MB"`` or a time such as ``"00:00"``) and retention
    (count or age such as ``"14 days"``)."""

    path: str = "daemon_hybrid.log"
    rotation: str = "20 MB"
    retention: str = "14 days"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DaemonConfig(_Strict):
    """How the daemon talks to Redis and RQ.

    ``redis_url``: ``None`` = ``$REDIS_URL``, else one the daemon starts
    itself (never a Redis merely found on localhost).
    ``allow_unauthenticated_redis``: accept a configured Redis that answers
    without a password (refused by default: whoever can write to it decides
    what the workers run).  ``job_timeout_s``: seconds one RQ job
    may run.  ``result_ttl_s``: seconds RQ keeps a job's result.
    ``retry_max``/``retry_intervals_s``: RQ ``Retry`` policy for a job that
    raised.  ``heartbeat_s``: seconds between heartbeats.  ``max_input_chars``:
    longest objective input accepted at submit.  ``coalesce_ms``: after a
    read of its streams that was not full, the daemon lets new entries gather
    this many milliseconds before it reads again, so that a busy queue's
    events are persisted together (one SQLite transaction, one Redis
    pipeline, one log line per read) instead of one or two at a time; it
    delays a state change's persistence by at most that much (0 = read
    again at once).  ``batch_max``: label inputs of one action and label set
    sent to the first tier's model at once, by ``swarmctl ask --file`` and
    by a worker, which takes up to that many queued objectives of one action
    and label set together (:mod:`swarmd.workers.batching`); the in-process
    model decodes them in one pass (1 = one at a time).
    """

    redis_url: str | None = None
    allow_unauthenticated_redis: bool = False
    job_timeout_s: int = Field(default=600, gt=0)
    result_ttl_s: int = Field(default=86400, gt=0)
    retry_max: int = Field(default=2, ge=0)
    retry_intervals_s: list[int] = Field(default_factory=lambda: [5, 30])
    heartbeat_s: float = Field(default=2.0, gt=0)
    max_input_chars: int = Field(default=32768, gt=0)
    coalesce_ms: float = Field(default=20.0, ge=0, le=1000)
    batch_max: int = Field(default=8, ge=1)
    log: LogConfig = LogConfig()


class GovernorConfig(_Strict):
    """The governor as the workers and the daemon use it (see docs/governor.md).

    ``policy``: the policy file, relative to the directory of this config
    file unless absolute (:attr:`Config.policy_path`).  ``approval_timeout_s``:
    seconds a parked (``awaiting_approval``) objective waits for ``swarmctl
    approve``/``reject`` before the daemon turns the ask into a deny.
    ``max_steps``: tool calls (model replies) one ``agent`` objective may
    make in total.  ``max_denials``: denied actions after which the objective
    ends ``failed`` (1 = the first deny ends it).  ``output_chars``:
    characters of each tool's output fed back to the model.
    ``commit_changes``: when the objective's workspace is a git repository,
    swarmd commits each applied change set there itself (hooks off); the
    agent's own git history never leaves its copy (docs/governor.md).
    """

    policy: str = Field(default="policy.yaml", min_length=1)
    commit_changes: bool = False
    approval_timeout_s: float = Field(default=3600, gt=0)
    max_steps: int = Field(default=8, gt=0)
    max_denials: int = Field(default=1, gt=0)
    output_chars: int = Field(default=1000, ge=0)


class Config(_Strict):
    """The whole validated configuration (see ``llm_config.yaml`` for every key).

    Cross-references are checked by the validators of the referring key,
    each reporting every offender: ``escalation.chain`` names tiers under
    ``tiers``, each action's ``tier`` is in the chain and ``quality.per_action``
    names actions (fields are declared in that order, so each validator sees
    the keys it refers to; a key that failed its own validation is not used).
    """

    version: Literal[1] = 1
    tiers: dict[str, list[ModelConfig]]
    escalation: EscalationConfig
    actions: dict[str, ActionConfig]
    quality: QualityConfig = QualityConfig()
    budgets: BudgetConfig = BudgetConfig()
    reports: ReportsConfig = ReportsConfig()
    metrics: MetricsConfig = MetricsConfig()
    api: ApiConfig = ApiConfig()
    storage: StorageConfig = StorageConfig()
    memory: MemoryConfig = MemoryConfig()
    traces: TracesConfig = TracesConfig()
    daemon: DaemonConfig = DaemonConfig()
    governor: GovernorConfig = GovernorConfig()
    source: str | None = Field(default=None, exclude=True)

    @property
    def source_path(self) -> Path | None:
        """The config file this was loaded from, absolute (``None``: parsed
        from text); the daemon re-reads it on SIGHUP."""
        return Path(os.path.abspath(self.source)) if self.source else None   # not resolved: a symlink is re-read

    @property
    def policy_path(self) -> Path:
        """The governor's policy file: ``governor.policy`` if absolute, else
        beside the config file (the current directory for a config parsed from text)."""
        p = Path(self.governor.policy).expanduser()
        if p.is_absolute():
            return p
        return (Path(self.source).resolve().parent if self.source else Path.cwd()) / p

    @field_validator("tiers")
    @classmethod
    def _tiers_not_empty(cls, tiers: dict[str, list[ModelConfig]]) -> dict[str, list[ModelConfig]]:
        Invalid.raise_any(((name,), "at least one model", "an empty list") for name, models in tiers.items()
                          if not models)
        return tiers

    @field_validator("escalation")
    @classmethod
    def _chain_names_tiers(cls, escalation: EscalationConfig, info: ValidationInfo) -> EscalationConfig:
        if "tiers" in info.data:
            Invalid.check_refs(((("chain", i), t) for i, t in enumerate(escalation.chain)), info.data["tiers"],
                               "a tier defined under tiers")
        return escalation

    @field_validator("actions")
    @classmethod
    def _action_tiers_in_chain(cls, actions: dict[str, ActionConfig], info: ValidationInfo) -> dict[str, ActionConfig]:
        if "escalation" in info.data:
            Invalid.check_refs((((name, "tier"), a.tier) for name, a in actions.items()),
                               info.data["escalation"].chain, "a tier in escalation.chain")
        return actions

    @field_validator("quality")
    @classmethod
    def _per_action_names_actions(cls, quality: QualityConfig, info: ValidationInfo) -> QualityConfig:
        if "actions" in info.data:
            Invalid.check_refs(((("per_action", name), name) for name in quality.per_action), info.data["actions"],
                               "an action defined under actions")
        return quality

    @field_validator("actions")
    @classmethod
    def _strategies_servable(cls, actions: dict[str, ActionConfig], info: ValidationInfo) -> dict[str, ActionConfig]:
        """Each action's ``strategy`` can be served by its chain; the
        :data:`AGENT_ACTION` action's, by the chain of every other configured
        action of :data:`AGENT_ROUTED` too (an agent objective routes its plan,
        slot fills and verification with its strategy: ``local_only`` with
        ``actions.plan`` on the API tier would reject every agent objective at
        submit).  An action that is not configured, or whose tier is not in
        the chain (reported on its own), is not checked."""
        if "escalation" in info.data and "tiers" in info.data:
            partial = _Plans(info.data["tiers"], info.data["escalation"].chain, actions)
            agent = actions.get(AGENT_ACTION)
            routed = partial.agent_routing_problems(agent.strategy) if agent and agent.tier in partial.chain else []
            Invalid.raise_any([*(((name, "strategy"), expected, short(a.strategy)) for name, a in actions.items()
                                 if a.tier in partial.chain
                                 and (expected := partial.problem(name, a.strategy)) is not None),
                               *(((AGENT_ACTION, "strategy"), expected, short(agent.strategy)) for expected in routed)])
        return actions

    def chain_from(self, action: str) -> list[str]:
        """Tiers to try for ``action``: the escalation chain from its starting tier on.

        Raises ``KeyError`` for an unknown action.
        """
        start = self.actions[action].tier
        chain = self.escalation.chain
        return chain[chain.index(start):]

    def strategy_of(self, action: str, strategy: str | None = None) -> str:
        """``strategy``, or ``action``'s default (``actions.<a>.strategy``) when ``None``."""
        return strategy or self.actions[action].strategy

    def plan(self, action: str, strategy: str | None = None) -> list[tuple[str, list[tuple[int, ModelConfig]]]]:
        """The models ``action`` may call under ``strategy`` (``None``: the
        action's default), in the order the router tries them: ``[(tier,
        [(index in the tier, model), ...]), ...]``; tiers with no model left
        are dropped.  See :data:`STRATEGIES`.  Raises ``KeyError`` for an
        unknown action, ``ValueError`` for an unknown strategy."""
        return _Plans(self.tiers, self.escalation.chain, self.actions).plan(action, self.strategy_of(action, strategy))

    def strategy_problem(self, action: str, strategy: str) -> str | None:
        """What ``strategy`` would need and ``action``'s chain lacks (a
        sentence), or ``None`` when it can be served."""
        return _Plans(self.tiers, self.escalation.chain, self.actions).problem(action, strategy)

    def agent_routing_problems(self, strategy: str) -> list[str]:
        """What the chain of each configured action of :data:`AGENT_ROUTED`
        other than :data:`AGENT_ACTION` lacks to serve ``strategy`` (one
        sentence each, naming the action); empty when all can serve it."""
        return _Plans(self.tiers, self.escalation.chain, self.actions).agent_routing_problems(strategy)


class _Plans:
    """Strategy plans over tiers, chain and actions (shared by :class:`Config`
    and its validator, which runs before the Config exists)."""

    def __init__(self, tiers: dict[str, list[ModelConfig]], chain: list[str], actions: dict[str, ActionConfig]):
        self.tiers, self.chain, self.actions = tiers, chain, actions

    def plan(self, action: str, strategy: str) -> list[tuple[str, list[tuple[int, ModelConfig]]]]:
        chain = self.chain[self.chain.index(self.actions[action].tier):]

        def stages(api: bool | None) -> list:
            out = [(tier, [(i, m) for i, m in enumerate(self.tiers.get(tier, ())) if api is None or m.is_api == api])
                   for tier in chain]
            return [(tier, models) for tier, models in out if models]

        if strategy == "cascade":
            return stages(None)
        if strategy == "local_only":
            return stages(False)
        if strategy == "api_only":
            return stages(True)
        if strategy == "local_fallback":
            return stages(True) + stages(False)
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")

    def problem(self, action: str, strategy: str) -> str | None:
        if strategy not in STRATEGIES:
            return f"one of {', '.join(STRATEGIES)}"
        plan = self.plan(action, strategy)
        kinds = {m.is_api for _, models in plan for _, m in models}
        start = self.actions[action].tier
        if strategy == "local_only" and not plan:
            return f"a strategy with a model to call: no local model in the chain from {start}"
        if strategy in ("api_only", "local_fallback") and True not in kinds:
            return (f"a strategy with a model to call: no API model ({', '.join(API_PROVIDERS)}) "
                    f"in the chain from {start}")
        return None

    def agent_routing_problems(self, strategy: str) -> list[str]:
        return [f"{lacking} (actions.{routed}: an agent objective routes its {what} with its strategy)"
                for routed, what in AGENT_ROUTED.items()
                if routed != AGENT_ACTION and routed in self.actions and self.actions[routed].tier in self.chain
                and (lacking := self.problem(routed, strategy)) is not None]


# --------------------------------------------------------------------------- loading


def parse_config(text: str, source: str | None = None, env: dict[str, str] | None = None) -> Config:
    """Parse and validate configuration text (``source``: the file name shown
    in problems).

    ``env`` (default ``os.environ``) supplies overrides: ``ANTHROPIC_API_KEY``
    sets the key of every ``anthropic`` model; ``OLLAMA_HOST`` (comma-separated
    URLs) replaces every ``ollama`` model's ``hosts``.

    Raises :class:`ConfigError` listing every problem, each with file, line,
    key path, expected and found.
    """
    return _validate(parse_yaml(text, source, ConfigError), env)


def _validate(doc: YamlDoc, env: dict[str, str] | None) -> Config:
    env = os.environ if env is None else env
    data = _apply_env(doc.data, env) if isinstance(doc.data, dict) else doc.data
    config = validate_yaml(Config, YamlDoc(data, doc.lines, doc.file), ConfigError)
    return config.model_copy(update={"source": doc.file})


def _apply_env(data: dict, env) -> dict:
    key = env.get("ANTHROPIC_API_KEY")
    hosts = [h.strip() for h in env.get("OLLAMA_HOST", "").split(",") if h.strip()]
    tiers = data.get("tiers")
    if not isinstance(tiers, dict):
        return data
    for models in tiers.values():
        for model in models if isinstance(models, list) else []:
            if not isinstance(model, dict):
                continue
            if model.get("provider") == "anthropic" and key:
                model["api_key"] = key
            if model.get("provider") == "ollama" and hosts:
                model["hosts"] = [h if "://" in h else f"http://{h}" for h in hosts]
    return data


def shipped_config_path() -> Path:
    """The default config shipped inside the package (``swarmd/llm_config.yaml``,
    read through :mod:`importlib.resources`; its ``governor.policy`` names
    ``swarmd/policy.yaml`` beside it)."""
    return Path(str(resources.files("swarmd").joinpath(DEFAULT_CONFIG_NAME)))


def default_config_path(env: dict[str, str] | None = None) -> Path:
    """``$SWARMD_CONFIG``, else ``./llm_config.yaml`` when the current directory
    has one, else :func:`shipped_config_path`.  A current directory that cannot
    be read (or no longer exists) counts as having none: never raises."""
    env = os.environ if env is None else env
    if env.get("SWARMD_CONFIG"):
        return Path(env["SWARMD_CONFIG"])
    try:
        here = Path.cwd() / DEFAULT_CONFIG_NAME
        if here.is_file():
            return here
    except OSError:       # PermissionError: an unreadable cwd; FileNotFoundError: a deleted one
        pass
    return shipped_config_path()


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file (default: :func:`default_config_path`).

    Raises :class:`ConfigError` (also for a missing or unreadable file).
    """
    p = Path(path) if path is not None else default_config_path(env)
    return _validate(read_yaml(p, ConfigError), env)
