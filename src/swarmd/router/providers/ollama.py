"""Ollama provider (the LOCAL_QUALITY tier): ``POST /api/generate`` on one or more hosts.

:class:`OllamaProvider` talks to Ollama through the official ``ollama`` client and
returns a :class:`Completion` (``token_logprobs`` ``None`` when the server returns none).
Hosts are tried in order.  A host that cannot be reached (refused, DNS, timeout, dropped
connection) is skipped for the rest of the call and remembered as down for
``cooldown_s`` seconds; a busy host (HTTP 429/503) is skipped for the call only.  When no
host answers, :class:`ProviderUnavailable` names every host and why.  A host that answers
with anything else unusable (other HTTP errors, a malformed reply) raises
:class:`ProviderError` at once: the request or the model is the problem, not the host.
What the client raises, as checked: docs/design.md.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

import httpx
import ollama
from loguru import logger

from swarmd.config import ModelConfig
from swarmd.errors import SwarmdError
from swarmd.router.providers.base import Completion, Prompt, Provider, ProviderError, ProviderUnavailable, shorten

__all__ = ["OllamaProvider"]

#: HTTP statuses that mean "busy, try elsewhere / later" rather than "bad request".
BUSY_STATUSES = frozenset({408, 429, 503, 504, 529})
#: Seconds to wait for a TCP connection (capped by ``timeout_s``): a host that
#: drops packets fails over in seconds, not after the whole generation timeout.
CONNECT_TIMEOUT_S = 5.0


class _HostFailed(SwarmdError):
    """Internal: this host did not answer; ``down`` = remember it as down."""

    def __init__(self, reason: str, down: bool):
        super().__init__(reason)
        self.reason, self.down = reason, down


class OllamaProvider(Provider):
    """A model served by Ollama on one or more hosts (``model.hosts``, tried in order).

    Construct with the tier entry's :class:`ModelConfig`; ``cooldown_s``
    (seconds, default 60) is how long an unreachable host is skipped;
    ``clock`` (seconds, monotonic) is injectable for tests.  ``model.timeout_s``
    (seconds) bounds each read/write of an HTTP request (connecting: at most
    :data:`CONNECT_TIMEOUT_S`), so one call takes at most about
    ``len(hosts) × timeout_s``.  Thread-safe.
    """

    kind = "ollama"

    def __init__(self, model: ModelConfig, *, cooldown_s: float = 60,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(model)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until: dict[str, float] = {}
        self._clients: dict[str, ollama.Client] = {}

    # ------------------------------------------------------------------ public

    def complete(self, prompt: Prompt, max_tokens: int) -> Completion:
        """Generate up to ``max_tokens`` tokens after ``prompt.text`` (raw, temperature 0).

        Returns a :class:`Completion`: ``text`` (the ``response`` field),
        ``tokens_in`` / ``tokens_out`` (``prompt_eval_count`` / ``eval_count``;
        Ollama omits a count of 0, read as 0), ``latency_ms`` (wall time of the
        request that answered, ms), ``token_logprobs`` (natural-log probability
        per generated token, or ``None`` when the server sent none), ``host``
        (the host that answered) and ``extra`` (``done_reason``, ``model``).

        Raises :class:`ProviderUnavailable` when no host could be reached (the
        reason names each host), :class:`ProviderError` when a host answered
        with an HTTP error or an unusable reply.
        """
        if not self.model.hosts:
            raise ProviderUnavailable(f"ollama {self.model.model}: no hosts configured")
        failures: list[str] = []
        for host in self.model.hosts:
            wait = self._cooling(host)
            if wait is not None:
                failures.append(f"{host}: down (cooling down, {wait:.0f}s left)")
                continue
            try:
                return self._generate(host, prompt, max_tokens)
            except _HostFailed as exc:
                failures.append(f"{host}: {exc.reason}")
                if exc.down:
                    self._mark_down(host)
                    logger.warning("ollama host {} unreachable ({}); skipping it for {:g}s",
                                   host, exc.reason, self.cooldown_s)
                else:
                    logger.info("ollama host {} busy ({}); trying the next host", host, exc.reason)
        raise ProviderUnavailable(f"ollama {self.model.model}: no host answered: " + "; ".join(failures))

    def hosts_down(self) -> dict[str, float]:
        """Hosts currently cooling down → seconds left."""
        now = self._clock()
        with self._lock:
            return {h: t - now for h, t in self._down_until.items() if t > now}

    def close(self) -> None:
        """Close the HTTP connections of every host's client."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                client.close()
            except Exception:  # closing must never fail the caller
                pass

    # ------------------------------------------------------------------ internals

    def _cooling(self, host: str) -> float | None:
        with self._lock:
            until = self._down_until.get(host)
        now = self._clock()
        return until - now if until is not None and until > now else None

    def _mark_down(self, host: str) -> None:
        with self._lock:
            self._down_until[host] = self._clock() + self.cooldown_s

    def _client(self, host: str) -> ollama.Client:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                try:
                    timeout = httpx.Timeout(self.model.timeout_s,
                                            connect=min(self.model.timeout_s, CONNECT_TIMEOUT_S))
                    client = ollama.Client(host=host, timeout=timeout)
                except Exception as exc:  # a host string the client cannot parse
                    raise _HostFailed(f"invalid host ({type(exc).__name__}: {exc})", down=True) from None
                self._clients[host] = client
            return client

    def _generate(self, host: str, prompt: Prompt, max_tokens: int) -> Completion:
        client = self._client(host)
        options: dict = {"num_predict": max_tokens, "temperature": 0}
        if prompt.stop:
            options["stop"] = list(prompt.stop)
        start = time.perf_counter()
        try:
            resp = client.generate(model=self.model.model, prompt=prompt.text, raw=True, stream=False,
                                   options=options, logprobs=True)
        except ConnectionError as exc:
            raise _HostFailed(_connect_reason(exc), down=True) from None
        except httpx.TimeoutException as exc:
            raise _HostFailed(f"timed out after {self.model.timeout_s:g}s ({type(exc).__name__})", down=True) from None
        except httpx.TransportError as exc:
            raise _HostFailed(f"{type(exc).__name__}: {exc}", down=True) from None
        except ollama.ResponseError as exc:
            if exc.status_code in BUSY_STATUSES:
                raise _HostFailed(f"busy: HTTP {exc.status_code}: {shorten(exc.error)}", down=False) from None
            raise ProviderError(f"ollama {self.model.model} at {host}: HTTP {exc.status_code}: "
                                f"{shorten(exc.error)}") from None
        except Exception as exc:  # JSONDecodeError, ValidationError, TypeError, httpx.DecodingError...
            raise ProviderError(f"ollama {self.model.model} at {host}: malformed reply: "
                                f"{type(exc).__name__}: {shorten(exc)}") from None
        latency_ms = (time.perf_counter() - start) * 1000.0
        return self._completion(resp, host, latency_ms)

    def _completion(self, resp: ollama.GenerateResponse, host: str, latency_ms: float) -> Completion:
        where = f"ollama {self.model.model} at {host}"
        if not isinstance(resp.response, str):
            raise ProviderError(f"{where}: malformed reply: no 'response' field")
        if resp.done is not True:
            raise ProviderError(f"{where}: malformed reply: 'done' is {resp.done!r}, expected true")
        logprobs = None
        if resp.logprobs:
            logprobs = [float(lp.logprob) for lp in resp.logprobs]
            if not all(math.isfinite(x) for x in logprobs):
                raise ProviderError(f"{where}: malformed reply: logprobs must be finite numbers")
            logprobs = [min(x, 0.0) for x in logprobs]  # rounding can give +1e-7; a probability is <= 1
        tokens_in, tokens_out = resp.prompt_eval_count or 0, resp.eval_count or 0
        if tokens_in < 0 or tokens_out < 0:
            raise ProviderError(f"{where}: malformed reply: negative token count")
        with self._lock:
            self._down_until.pop(host, None)
        return Completion(
            text=resp.response, tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms,
            token_logprobs=logprobs, host=host,
            extra={"done_reason": resp.done_reason, "model": resp.model},
        )


def _connect_reason(exc: BaseException) -> str:
    """``connection failed: <cause>`` using the httpx error the client hid behind its message."""
    cause = exc.__cause__ or exc.__context__
    return f"connection failed: {shorten(cause) if cause else 'unknown cause'}"
