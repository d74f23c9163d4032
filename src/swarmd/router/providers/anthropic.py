"""Anthropic provider (the API_FALLBACK tier): the Messages API through the official SDK.

:class:`AnthropicProvider` sends one user turn with ``messages.create(model, max_tokens,
messages, stop_sequences)`` (SDK ``max_retries`` 1) and returns a :class:`Completion`.
No API key, connection errors, timeouts and busy answers (:data:`BUSY_STATUSES`,
:data:`BUSY_TYPES`) raise :class:`ProviderUnavailable`; other HTTP errors and malformed
replies raise :class:`ProviderError`.  Whitespace-only stop sequences, which the API
rejects, are applied here to the returned text.

Error messages never contain the API key: they are built from status, error type and
message only, scrubbed of the key, and raised without chaining the SDK exception (whose
request carries the key).  What the SDK does, as checked: docs/design.md.
"""

from __future__ import annotations

import threading
import time

import anthropic
from loguru import logger

from swarmd.config import ModelConfig
from swarmd.router.providers.base import Completion, Prompt, Provider, ProviderError, ProviderUnavailable, shorten

__all__ = ["AnthropicProvider"]

#: HTTP statuses that mean "back off and come later": rate limit, overload, timeouts.
BUSY_STATUSES = frozenset({408, 429, 503, 504, 529})
BUSY_TYPES = frozenset({"rate_limit_error", "overloaded_error", "timeout_error"})
#: Seconds to wait for a TCP connection (capped by ``timeout_s``), as the SDK's own default.
CONNECT_TIMEOUT_S = 5.0


class AnthropicProvider(Provider):
    """A Claude model through the Anthropic Messages API.

    Construct with the tier entry's :class:`ModelConfig`: ``model.model`` is
    the model id, ``model.api_key`` the key (``ANTHROPIC_API_KEY`` is folded in
    by the config loader), ``model.base_url`` an optional endpoint (default:
    the SDK's, or ``ANTHROPIC_BASE_URL``), ``model.timeout_s`` seconds per HTTP
    attempt (connecting: at most :data:`CONNECT_TIMEOUT_S`).  ``max_retries``
    is passed to the SDK (default 1: the router escalates and cools down by
    itself).  No network traffic happens before the first :meth:`complete`.
    Thread-safe.
    """

    kind = "anthropic"

    def __init__(self, model: ModelConfig, *, max_retries: int = 1):
        super().__init__(model)
        self.max_retries = max_retries
        self._secret = model.api_key.get_secret_value().strip() if model.api_key is not None else ""
        self._client: anthropic.Anthropic | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public

    def complete(self, prompt: Prompt, max_tokens: int) -> Completion:
        """Ask for up to ``max_tokens`` tokens answering ``prompt.text`` (one user message).

        Returns a :class:`Completion`: ``text`` (the text blocks joined, cut at
        any whitespace-only stop of ``prompt.stop``), ``tokens_in`` (usage
        ``input_tokens`` + cache creation + cache read tokens), ``tokens_out``
        (``output_tokens``), ``latency_ms`` (wall time including SDK retries,
        ms), ``token_logprobs`` ``None`` (the API has none), ``host`` the base
        URL, ``extra`` (``stop_reason``, ``id``, ``request_id``).

        Raises :class:`ProviderUnavailable` without any network call when no
        API key is configured, and for connection errors, timeouts, 429, 529
        and other overload/rate-limit answers; :class:`ProviderError` for other
        HTTP errors (400, 401, 403, 404, 500...) and malformed replies.
        """
        if not self._secret:
            raise ProviderUnavailable("no ANTHROPIC_API_KEY configured")
        client = self._get_client()
        api_stops = [s for s in prompt.stop if s.strip()]
        local_stops = [s for s in prompt.stop if s and not s.strip()]
        kwargs = {"stop_sequences": api_stops} if api_stops else {}
        failure: Exception | None = None
        start = time.perf_counter()
        try:
            message = client.messages.create(
                model=self.model.model, max_tokens=max_tokens,
                messages=[{"role": "user", "content": prompt.text}], **kwargs)
        except Exception as exc:  # mapped below, outside the handler: no SDK exception is chained
            failure = self._map_error(exc)
        latency_ms = (time.perf_counter() - start) * 1000.0
        if failure is None:
            try:
                return self._completion(message, latency_ms, local_stops)
            except ProviderError as exc:
                failure = exc
        logger.warning("anthropic {}: {}", self.model.model, failure)
        raise failure

    def close(self) -> None:
        """Close the SDK client's HTTP connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing must never fail the caller
                pass

    # ------------------------------------------------------------------ internals

    def _get_client(self) -> anthropic.Anthropic:
        with self._lock:
            if self._client is None:
                try:
                    self._client = anthropic.Anthropic(
                        api_key=self._secret, base_url=self.model.base_url,
                        timeout=anthropic.Timeout(self.model.timeout_s,
                                                  connect=min(self.model.timeout_s, CONNECT_TIMEOUT_S)),
                        max_retries=self.max_retries)
                except Exception as exc:
                    raise ProviderUnavailable(self._scrub(
                        f"anthropic {self.model.model}: client could not be created: "
                        f"{type(exc).__name__}: {exc}")) from None
            return self._client

    def _scrub(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self._secret, "***") if self._secret else text

    def _map_error(self, exc: Exception) -> Exception:
        """The :class:`ProviderUnavailable` / :class:`ProviderError` for an SDK exception."""
        where = f"anthropic {self.model.model}"
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderUnavailable(f"{where}: timed out after {self.model.timeout_s:g}s "
                                       f"({self.max_retries + 1} attempt(s))")
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            return ProviderUnavailable(self._scrub(f"{where}: connection failed: {shorten(detail)}"))
        if isinstance(exc, anthropic.APIStatusError):
            kind = exc.type if isinstance(exc.type, str) else None
            text = exc.api_message if isinstance(exc.api_message, str) else shorten(exc.body)
            reason = self._scrub(f"{where}: HTTP {exc.status_code}" + (f" {kind}" if kind else "")
                                 + f": {shorten(text)}")
            if exc.status_code in BUSY_STATUSES or kind in BUSY_TYPES:
                return ProviderUnavailable(reason)
            return ProviderError(reason)
        return ProviderError(self._scrub(f"{where}: malformed reply: {type(exc).__name__}: {shorten(exc)}"))

    def _completion(self, message: object, latency_ms: float, local_stops: list[str]) -> Completion:
        where = f"anthropic {self.model.model}"
        content = getattr(message, "content", None)
        usage = getattr(message, "usage", None)
        if not isinstance(content, list):
            raise ProviderError(self._scrub(f"{where}: malformed reply: no 'content' list "
                                            f"(got {shorten(type(message).__name__)})"))
        parts = []
        for block in content:
            if _get(block, "type") == "text":
                text = _get(block, "text")
                if not isinstance(text, str):
                    raise ProviderError(f"{where}: malformed reply: text block without 'text'")
                parts.append(text)
        counts = {k: _get(usage, k) for k in ("input_tokens", "output_tokens",
                                               "cache_creation_input_tokens", "cache_read_input_tokens")}
        if not all(isinstance(counts[k], int) and counts[k] >= 0 for k in ("input_tokens", "output_tokens")):
            raise ProviderError(f"{where}: malformed reply: 'usage' lacks input_tokens/output_tokens")
        tokens_in = sum(v for v in (counts["input_tokens"], counts["cache_creation_input_tokens"],
                                    counts["cache_read_input_tokens"]) if isinstance(v, int))
        text = _cut(("".join(parts)), local_stops)
        return Completion(
            text=text, tokens_in=tokens_in, tokens_out=counts["output_tokens"], latency_ms=latency_ms,
            token_logprobs=None, host=str(self._client.base_url) if self._client else None,
            extra={"stop_reason": _get(message, "stop_reason"), "id": _get(message, "id"),
                   "request_id": getattr(message, "_request_id", None)},
        )


def _get(obj: object, name: str) -> object:
    """Attribute or dict item ``name`` of ``obj`` (the SDK keeps unknown blocks as dicts)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _cut(text: str, stops: list[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i != -1), default=len(text))
    return text[:cut]
