"""The one small interface every model backend implements.

A provider turns a :class:`Prompt` into a :class:`Completion`.  Two errors
tell the router what happened when it cannot:

* :class:`ProviderUnavailable` — the backend cannot be reached (connection
  refused, DNS, timeout, missing model file/package).  The router marks the
  model unavailable for a cool-down period and skips it.
* :class:`ProviderError` — the backend answered but the answer is unusable
  (HTTP 4xx/5xx, malformed reply).  The router records the attempt and
  escalates.

Providers never see budgets or the ledger; the router does that.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from swarmd.config import LabelCalibration, ModelConfig
from swarmd.errors import SwarmdError


#: Output tokens a label answer (``classify``/``yes_no``) may take: providers
#: without a label distribution generate at most this many, and the budget
#: reserves this many for such a call instead of the model's max_output_tokens.
LABEL_MAX_TOKENS = 8


@dataclass(frozen=True)
class Prompt:
    """A prompt split where its stable part ends.

    ``prefix`` is the part shared by many calls (instruction + few-shot
    examples): providers that can, keep its KV state and reuse it.  ``body`` is
    the per-item rest.  ``text`` is the whole prompt.  ``labels`` is the label
    set for label outputs (answers are read as `` <label>`` after the body).
    """

    prefix: str
    body: str
    labels: tuple[str, ...] = ()
    output: str = "text"
    stop: tuple[str, ...] = ("\n\n",)
    #: calibrations of this action's label answers (from the config), each
    #: valid only for the model (and label set) it was fitted on
    calibration: tuple[LabelCalibration, ...] = ()
    #: ``fixed`` or ``retrieved`` (retrieved examples in the body): which calibrations apply
    form: str = "fixed"

    @property
    def text(self) -> str:
        return self.prefix + self.body


@dataclass
class Completion:
    """One model call's answer.

    ``text``: the raw answer; ``tokens_in``/``tokens_out``: token counts as the
    backend counted them; ``latency_ms``: wall time of the call in
    milliseconds; ``token_logprobs``: natural-log probability of each generated
    token, when the backend returns them; ``label_probs``: probability of each
    label (sums to 1) when the answer was read from a distribution over a label
    set; ``host``: which server answered, for providers with several.
    """

    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    token_logprobs: list[float] | None = None
    label_probs: dict[str, float] | None = None
    confidence: float | None = None
    host: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mean_token_prob(self) -> float | None:
        """exp(mean token logprob) in [0, 1], or ``None`` without logprobs."""
        if not self.token_logprobs:
            return None
        return math.exp(sum(self.token_logprobs) / len(self.token_logprobs))


class ProviderUnavailable(SwarmdError, RuntimeError):
    """The backend cannot be reached now; the router cools the model down."""


class ProviderError(SwarmdError, RuntimeError):
    """The backend answered with something unusable; the router escalates."""


class Provider(ABC):
    """A model backend.  Construct with the tier entry's :class:`ModelConfig`.

    Subclasses implement :meth:`complete`; :meth:`classify` defaults to
    generating a short answer and leaving its parsing to the quality gate,
    and backends that can score a label set in one pass override it.
    """

    kind: str = "base"

    def __init__(self, model: ModelConfig):
        self.model = model

    @abstractmethod
    def complete(self, prompt: Prompt, max_tokens: int) -> Completion:
        """Generate up to ``max_tokens`` tokens after ``prompt.text``.

        Raises :class:`ProviderUnavailable` or :class:`ProviderError`.
        """

    def classify(self, prompt: Prompt) -> Completion:
        """Answer with one of ``prompt.labels``; default: a short generation
        of at most :data:`LABEL_MAX_TOKENS` tokens."""
        return self.complete(prompt, max_tokens=LABEL_MAX_TOKENS)

    def close(self) -> None:
        """Release connections or model memory; the default does nothing."""

    def __repr__(self) -> str:  # never shows secrets: ModelConfig masks them
        return f"{type(self).__name__}(model={self.model.model!r})"


def shorten(obj: object, limit: int = 300) -> str:
    """``str(obj)`` on one line (whitespace runs collapsed), cut to ``limit``
    characters plus ``…``: a backend's error text fit for a provider error."""
    text = " ".join(str(obj).split())
    return text if len(text) <= limit else text[:limit] + "…"
