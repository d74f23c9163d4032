"""A fake Ollama server speaking the native REST API on loopback.

Endpoints (the subset swarmd and the ``ollama`` client use):

* ``POST /api/generate`` — request ``{"model", "prompt", "raw", "stream",
  "options": {"num_predict", "temperature", "stop"}, "logprobs",
  "top_logprobs"}``; answer ``{"model", "created_at", "response", "done":
  true, "done_reason", "prompt_eval_count", "eval_count", durations in ns,
  "logprobs": [{"token", "logprob", "bytes", "top_logprobs"?}]}`` (logprobs only
  when the request set ``"logprobs": true`` and the scripted answer has them).
* ``POST /api/chat`` — the same with ``"messages"`` in and ``"message":
  {"role": "assistant", "content"}`` out.
* ``stream`` true or absent (Ollama's default) gives NDJSON chunks, one per
  token, then a final ``"done": true`` chunk with the counts.
* ``GET /`` → ``Ollama is running``; ``GET /api/version``; ``GET /api/tags``.
* Errors are ``{"error": "<message>"}`` with the HTTP status.

Validation done by the fake itself (consumes no scripted reply): malformed
JSON → 400, missing ``model`` → 400, a model not in ``models`` (when given)
→ 404 ``model "x" not found, try pulling it first``.

Usage::

    with FakeOllama(replies=[Answer("feat", tokens_in=30, logprobs=[-0.05])]) as srv:
        ...  # point the client at srv.url
        sent = srv.model_requests("/api/generate")[0].json
        assert sent["options"]["num_predict"] == 8
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from . import Answer, Error, FakeServer, RecordedRequest, Reply, Response, cut_at_stop

__all__ = ["FakeOllama"]


class FakeOllama(FakeServer):
    """Fake Ollama: scripted replies for ``/api/generate`` and ``/api/chat``.

    ``replies``: the reply script (see :mod:`tests.fakes`); ``models``: model
    names the server "has" (``None`` = any name is accepted); ``version``:
    reported by ``/api/version``.
    """

    def __init__(self, replies: list[Reply] | tuple[Reply, ...] = (), *,
                 models: list[str] | None = None, version: str = "0.12.6"):
        super().__init__(replies)
        self.models = models
        self.version = version

    def handle(self, req: RecordedRequest) -> Response:
        """Route one request (see the module docstring)."""
        if req.method == "GET" and req.path == "/":
            return Response.text(200, "Ollama is running")
        if req.method == "GET" and req.path == "/api/version":
            return Response.json(200, {"version": self.version})
        if req.method == "GET" and req.path == "/api/tags":
            return Response.json(200, {"models": [{"name": m, "model": m} for m in self.models or []]})
        if req.method == "POST" and req.path in ("/api/generate", "/api/chat"):
            data = req.json
            if not isinstance(data, dict):
                return _error(400, "invalid character in request body")
            if not data.get("model"):
                return _error(400, "model is required")
            if self.models is not None and data["model"] not in self.models:
                return _error(404, f'model "{data["model"]}" not found, try pulling it first')
            return self.render(req, self.next_reply())
        return Response.text(404, "404 page not found")

    def render_error(self, req: RecordedRequest, error: Error) -> Response:
        """``{"error": message}`` with ``error.status``."""
        return _error(error.status, error.message)

    def render_answer(self, req: RecordedRequest, answer: Answer) -> Response:
        """The generate/chat answer, streamed as NDJSON when the request asked for it."""
        data = req.json
        options = data.get("options") or {}
        text, _ = cut_at_stop(answer.text, options.get("stop"))
        want_lp = bool(data.get("logprobs")) and answer.logprobs is not None
        top_k = int(data.get("top_logprobs") or 0)
        entries = _logprob_entries(answer, len(text), top_k) if want_lp else []
        chat = req.path == "/api/chat"
        base = {"model": data["model"], "created_at": datetime.now(timezone.utc).isoformat()}
        final = {
            **base, "done": True, "done_reason": "stop",
            "total_duration": 1_000_000, "load_duration": 100_000,
            "prompt_eval_count": answer.tokens_in, "prompt_eval_duration": 200_000,
            "eval_count": answer.n_out, "eval_duration": 700_000,
        }
        if data.get("stream", True):
            chunks = [{**base, **_content(chat, e["token"]), "done": False, "logprobs": [e]} for e in entries]
            if not entries and text:
                chunks.append({**base, **_content(chat, text), "done": False})
            chunks.append({**final, **_content(chat, "")})
            body = b"".join(json.dumps(c).encode() + b"\n" for c in chunks)
            return Response(200, body, {"Content-Type": "application/x-ndjson"})
        out = {**final, **_content(chat, text)}
        if want_lp:
            out["logprobs"] = entries
        return Response.json(200, out)


def _content(chat: bool, text: str) -> dict:
    return {"message": {"role": "assistant", "content": text}} if chat else {"response": text}


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message})


def _logprob_entries(answer: Answer, kept_chars: int, top_k: int) -> list[dict]:
    """Ollama logprob entries for the tokens that start before ``kept_chars``."""
    entries, offset = [], 0
    for token, logprob in zip(answer.token_pieces(), answer.logprobs or ()):
        if offset >= kept_chars and kept_chars < len(answer.text):
            break
        entry = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
        if top_k:
            entry["top_logprobs"] = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
        entries.append(entry)
        offset += len(token)
    return entries
