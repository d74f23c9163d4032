"""Loading and validating ``llm_config.yaml``.

The configuration is parsed with PyYAML and validated with pydantic models that
forbid unknown keys.  Every error names the file, the line (from the YAML node
marks), the dotted key path, what was expected and what was found, e.g.::

    llm_config.yaml:23: tiers.LOCAL_FAST[0].price_per_mtok_in: expected a number >= 0, found -1

Environment variables override secrets and hosts (see :func:`load_config`).
Secrets are :class:`pydantic.SecretStr`: they never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_NAME = "llm_config.yaml"
TIER_NAMES = ("LOCAL_FAST", "LOCAL_QUALITY", "API_FALLBACK")
OUTPUT_KINDS = ("label", "labels", "yes_no", "json", "text", "code")


class ConfigError(ValueError):
    """A configuration file that cannot be used.

    Attributes: ``file`` (path or ``None``), ``line`` (1-based or ``None``),
    ``key`` (dotted key path), ``expected`` and ``found`` (human-readable).
    """

    def __init__(self, file: str | None, line: int | None, key: str, expected: str, found: str):
        self.file, self.line, self.key, self.expected, self.found = file, line, key, expected, found
        where = f"{file or '<config>'}" + (f":{line}" if line else "")
        super().__init__(f"{where}: {key or '<root>'}: expected {expected}, found {found}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


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
    from ``label_intercept`` get 0.
    """

    model: str
    slope: float
    intercept: float
    scale: float = Field(1.0, gt=0)
    bias: dict[str, float] = Field(default_factory=dict)
    label_intercept: dict[str, float] = Field(default_factory=dict)


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
    n_threads: int | None = Field(default=None, gt=0)
    label_temperature: float = Field(default=1.0, gt=0)
    hosts: list[str] = Field(default_factory=list)
    api_key: SecretStr | None = None
    base_url: str | None = None
    prior_confidence: float = Field(default=0.9, ge=0, le=1)

    @model_validator(mode="after")
    def _provider_fields(self) -> "ModelConfig":
        if self.provider == "ollama" and not self.hosts:
            raise ValueError("hosts: expected at least one Ollama host URL for provider ollama")
        return self

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """Cost of one call in USD: tokens × price per million tokens / 1e6."""
        return (tokens_in * self.price_per_mtok_in + tokens_out * self.price_per_mtok_out) / 1_000_000

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

    @model_validator(mode="after")
    def _item_has_input(self) -> "ActionConfig":
        if "{input}" not in self.item:
            raise ValueError("item: expected a template containing {input}")
        return self


class QualityConfig(_Strict):
    """Quality gate: accept when confidence >= threshold (0..1)."""

    threshold: float = Field(default=0.7, ge=0, le=1)
    per_action: dict[str, float] = Field(default_factory=dict)
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
    """Budget pacing (see :mod:`swarmd.router.budgets`).

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
            raise ValueError("a local time \"HH:MM\" (24-hour clock) or null")
        return value


class MetricsConfig(_Strict):
    """Prometheus metrics served by the daemon on ``127.0.0.1:port``
    (``None`` = off).  ``refresh_s``: seconds between reads of new ledger rows."""

    port: int | None = Field(default=None, ge=1, le=65535)
    refresh_s: float = Field(default=5.0, gt=0)


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
    """

    cache: bool = True
    audit_rate: float = Field(default=0.05, ge=0, le=1)
    consolidate_at: str | None = "03:30"
    max_records: int = Field(default=100_000, gt=0)
    min_verified: int = Field(default=100, gt=0)
    qdrant_url: str | None = None

    @field_validator("consolidate_at")
    @classmethod
    def _hh_mm(cls, value: str | None) -> str | None:
        return ReportsConfig._hh_mm(value)


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

    ``redis_url``: ``None`` = ``$REDIS_URL``, else a server on localhost:6379,
    else one the daemon starts itself.  ``job_timeout_s``: seconds one RQ job
    may run.  ``result_ttl_s``: seconds RQ keeps a job's result.
    ``retry_max``/``retry_intervals_s``: RQ ``Retry`` policy for a job that
    raised.  ``heartbeat_s``: seconds between heartbeats.  ``max_input_chars``:
    longest objective input accepted at submit.
    """

    redis_url: str | None = None
    job_timeout_s: int = Field(default=600, gt=0)
    result_ttl_s: int = Field(default=86400, gt=0)
    retry_max: int = Field(default=2, ge=0)
    retry_intervals_s: list[int] = Field(default_factory=lambda: [5, 30])
    heartbeat_s: float = Field(default=2.0, gt=0)
    max_input_chars: int = Field(default=32768, gt=0)
    log: LogConfig = LogConfig()


class GovernorConfig(_Strict):
    """The governor as the workers and the daemon use it (see docs/governor.md).

    ``policy``: the policy file, relative to the directory of this config
    file unless absolute (:meth:`policy_path`).  ``approval_timeout_s``:
    seconds a parked (``awaiting_approval``) objective waits for ``swarmctl
    approve``/``reject`` before the daemon turns the ask into a deny.
    ``max_steps``: tool calls (model replies) one ``agent`` objective may
    make in total.  ``max_denials``: denied actions after which the objective
    ends ``failed`` (1 = the first deny ends it).  ``output_chars``:
    characters of each tool's output fed back to the model.
    """

    policy: str = Field(default="policy.yaml", min_length=1)
    approval_timeout_s: float = Field(default=3600, gt=0)
    max_steps: int = Field(default=8, gt=0)
    max_denials: int = Field(default=1, gt=0)
    output_chars: int = Field(default=1000, ge=0)

    def policy_path(self, config_source: str | None) -> Path:
        """The policy file: ``policy`` if absolute, else beside ``config_source``
        (the config file's path; the current directory when ``None``)."""
        p = Path(self.policy).expanduser()
        if p.is_absolute():
            return p
        base = Path(config_source).resolve().parent if config_source else Path.cwd()
        return base / p


class Config(_Strict):
    """The whole validated configuration (see ``llm_config.yaml`` for every key)."""

    version: Literal[1] = 1
    tiers: dict[str, list[ModelConfig]]
    actions: dict[str, ActionConfig]
    quality: QualityConfig = QualityConfig()
    escalation: EscalationConfig
    budgets: BudgetConfig = BudgetConfig()
    reports: ReportsConfig = ReportsConfig()
    metrics: MetricsConfig = MetricsConfig()
    storage: StorageConfig = StorageConfig()
    memory: MemoryConfig = MemoryConfig()
    daemon: DaemonConfig = DaemonConfig()
    governor: GovernorConfig = GovernorConfig()
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _cross_refs(self) -> "Config":
        for name, models in self.tiers.items():
            if not models:
                raise _RefError(("tiers", name), "at least one model", "an empty list")
        for i, tier in enumerate(self.escalation.chain):
            if tier not in self.tiers:
                raise _RefError(("escalation", "chain", i), f"a tier defined under tiers ({', '.join(self.tiers)})", repr(tier))
        for name, action in self.actions.items():
            if action.tier not in self.escalation.chain:
                raise _RefError(("actions", name, "tier"), f"a tier in escalation.chain ({', '.join(self.escalation.chain)})", repr(action.tier))
        for name, value in self.quality.per_action.items():
            if name not in self.actions:
                raise _RefError(("quality", "per_action", name), f"an action defined under actions ({', '.join(self.actions)})", repr(name))
            if not 0 <= value <= 1:
                raise _RefError(("quality", "per_action", name), "a number between 0 and 1", repr(value))
        return self

    def chain_from(self, action: str) -> list[str]:
        """Tiers to try for ``action``: the escalation chain from its starting tier on.

        Raises ``KeyError`` for an unknown action.
        """
        start = self.actions[action].tier
        chain = self.escalation.chain
        return chain[chain.index(start):]


class _RefError(ValueError):
    def __init__(self, loc: tuple, expected: str, found: str):
        self.loc, self.expected, self.found = loc, expected, found
        super().__init__(f"expected {expected}, found {found}")


# --------------------------------------------------------------------------- loading


def _line_map(node: yaml.Node | None, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every key path in a composed YAML tree to its 1-based line number."""
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value,)
            out[sub] = key.start_mark.line + 1
            _line_map(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _line_map(value, path + (i,), out)
    return out


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


_EXPECTED = {
    "float_parsing": "a number", "float_type": "a number", "int_parsing": "an integer",
    "int_type": "an integer", "int_from_float": "an integer", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "bool_type": "true or false", "bool_parsing": "true or false",
}


def _explain(err: dict) -> tuple[tuple, str, str]:
    """(loc, expected, found) for one pydantic error dict."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind, ctx, found = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return loc, "a known key (see the commented llm_config.yaml)", f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return loc, "this key to be set", "nothing"
    if kind == "literal_error":
        return loc, f"one of {ctx.get('expected')}", repr(found)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "?")
        return loc, f"a number {op} {bound}", repr(found)
    if kind in ("too_short", "string_too_short"):
        return loc, "a non-empty value", repr(found)
    if kind == "value_error":
        err_obj = ctx.get("error")
        if isinstance(err_obj, _RefError):
            return err_obj.loc, err_obj.expected, err_obj.found
        msg = str(err_obj or err["msg"])
        if ":" in msg and msg.split(":", 1)[0].isidentifier():
            key, rest = msg.split(":", 1)
            return loc + (key,), rest.strip().removeprefix("expected ").strip(), "something else"
        return loc, msg, repr(found)
    return loc, _EXPECTED.get(kind, err["msg"]), f"{found!r} ({type(found).__name__})"


def parse_config(text: str, source: str | None = None, env: dict[str, str] | None = None) -> Config:
    """Parse and validate configuration text.

    ``env`` (default ``os.environ``) supplies overrides: ``ANTHROPIC_API_KEY``
    sets the key of every ``anthropic`` model; ``OLLAMA_HOST`` (comma-separated
    URLs) replaces every ``ollama`` model's ``hosts``.

    Raises :class:`ConfigError` naming file, line, key path, expected and found.
    """
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(source, mark.line + 1 if mark else None, "", "valid YAML",
                          str(getattr(exc, "problem", exc))) from None
    if not isinstance(data, dict):
        raise ConfigError(source, 1, "", "a mapping of top-level keys (tiers, actions, ...)", type(data).__name__)
    lines = _line_map(node)
    data = _apply_env(data, env)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        loc, expected, found = _explain(exc.errors()[0])
        raise ConfigError(source, _line_for(lines, loc), _dotted(loc), expected, found) from None
    return config.model_copy(update={"source": source})


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


def default_config_path(env: dict[str, str] | None = None) -> Path:
    """``$SWARMD_CONFIG``, else ``./llm_config.yaml``, else the one shipped beside the package."""
    env = os.environ if env is None else env
    if env.get("SWARMD_CONFIG"):
        return Path(env["SWARMD_CONFIG"])
    here = Path.cwd() / DEFAULT_CONFIG_NAME
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / DEFAULT_CONFIG_NAME


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file (default: :func:`default_config_path`).

    Raises :class:`ConfigError` (also for a missing or unreadable file).
    """
    p = Path(path) if path is not None else default_config_path(env)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), None, "", "a readable YAML file", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), None, "", "UTF-8 text", "bytes that are not UTF-8") from None
    return parse_config(text, str(p), env)
