"""A fake Anthropic Messages API on loopback.

``POST /v1/messages`` with a JSON body ``{"model", "max_tokens", "messages":
[{"role", "content"}], "stop_sequences"?}`` answers::

    {"id": "msg_fake_1", "type": "message", "role": "assistant", "model": ...,
     "content": [{"type": "text", "text": ...}],
     "stop_reason": "end_turn" | "stop_sequence", "stop_sequence": ...,
     "usage": {"input_tokens": ..., "output_tokens": ...,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}

with a ``request-id`` header.  Errors have the documented shape
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``;
an :class:`~tests.fakes.Error` without ``type`` gets the documented type for
its status (400 invalid_request_error, 401 authentication_error, 403
permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500 api_error, 529 overloaded_error).

Validation done by the fake itself (consumes no scripted reply), as the real
API does: no credentials → 401; credentials other than ``api_key`` (when
given) → 401 ``invalid x-api-key``; no ``anthropic-version`` header → 400;
body not JSON, or ``model`` / ``max_tokens`` / ``messages`` missing → 400;
an empty or whitespace-only stop sequence → 400 (``stop_sequences: each stop
sequence must contain non-whitespace``).  Credentials are read from
``x-api-key`` or ``Authorization: Bearer`` (the SDK version in use sends the
latter); :attr:`RecordedRequest.headers` shows which.

Usage::

    with FakeAnthropic(replies=[Answer("B", tokens_in=20, tokens_out=1)], api_key="sk-test") as srv:
        ...  # ModelConfig(base_url=srv.url, api_key="sk-test", ...)
        assert srv.model_requests()[0].json["model"] == "claude-sonnet-4-5"
"""

from __future__ import annotations

from . import Answer, Error, FakeServer, RecordedRequest, Reply, Response, cut_at_stop

__all__ = ["FakeAnthropic", "ERROR_TYPES", "api_key_of"]

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


def api_key_of(req: RecordedRequest) -> str | None:
    """The credential a request carried: ``x-api-key`` or the ``Authorization: Bearer`` token."""
    if req.headers.get("x-api-key"):
        return req.headers["x-api-key"]
    auth = req.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


class FakeAnthropic(FakeServer):
    """Fake Anthropic API: scripted replies for ``POST /v1/messages``.

    ``replies``: the reply script (see :mod:`tests.fakes`); ``api_key``: when
    set, the only credential accepted (others get 401).
    """

    def __init__(self, replies: list[Reply] | tuple[Reply, ...] = (), *, api_key: str | None = None):
        super().__init__(replies)
        self.api_key = api_key
        self._ids = 0

    def handle(self, req: RecordedRequest) -> Response:
        """Route one request (see the module docstring)."""
        if not (req.method == "POST" and req.path == "/v1/messages"):
            return self._error(404, "not_found_error", f"Not found: {req.method} {req.path}")
        key = api_key_of(req)
        if not key:
            return self._error(401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not req.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        data = req.json
        if not isinstance(data, dict):
            return self._error(400, "invalid_request_error", "There was an issue with the JSON body")
        for name in ("model", "max_tokens", "messages"):
            if name not in data:
                return self._error(400, "invalid_request_error", f"{name}: Field required")
        if not data["messages"]:
            return self._error(400, "invalid_request_error", "messages: at least one message is required")
        if any(not str(s).strip() for s in data.get("stop_sequences") or ()):
            return self._error(400, "invalid_request_error",
                               "stop_sequences: each stop sequence must contain non-whitespace")
        return self.render(req, self.next_reply())

    def render_error(self, req: RecordedRequest, error: Error) -> Response:
        """The documented error body for ``error.status`` / ``error.type``."""
        return self._error(error.status, error.type or ERROR_TYPES.get(error.status, "api_error"), error.message)

    def render_answer(self, req: RecordedRequest, answer: Answer) -> Response:
        """A Messages API ``message`` object (logprobs are ignored: the API has none)."""
        data = req.json
        text, stop = cut_at_stop(answer.text, data.get("stop_sequences"))
        n = self._next_id()
        body = {
            "id": f"msg_fake_{n}", "type": "message", "role": "assistant",
            "model": data["model"], "content": [{"type": "text", "text": text}],
            "stop_reason": "stop_sequence" if stop else "end_turn", "stop_sequence": stop,
            "usage": {"input_tokens": answer.tokens_in, "output_tokens": answer.n_out,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        return Response.json(200, body, {"request-id": f"req_fake_{n}"})

    def _error(self, status: int, type_: str, message: str) -> Response:
        rid = f"req_fake_{self._next_id()}"
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": rid}
        return Response.json(status, body, {"request-id": rid})

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids
