"""Scriptable loopback HTTP fakes of the model services swarmd talks to.

Each fake is a stdlib :class:`~http.server.ThreadingHTTPServer` bound to
``127.0.0.1`` on a free port, served from a daemon thread, and used as a
context manager::

    from tests.fakes import Answer, Error, Delay, Malformed, Drop
    from tests.fakes.ollama_server import FakeOllama

    with FakeOllama(replies=[Answer("feat", tokens_in=12, logprobs=[-0.1])]) as srv:
        provider = OllamaProvider(model_config(hosts=[srv.url]))
        ...
        assert srv.requests[0].json["options"]["num_predict"] == 8

**Scripting replies.**  ``replies`` is consumed one per model request (e.g.
``POST /api/generate`` or ``POST /v1/messages``; requests the fake rejects by
its own validation, like a missing API key, consume nothing).  When the script
runs out, the last reply is repeated, so a single error reply also answers an
SDK's retry; with no script at all every request gets ``Answer()``.  A reply
is one of:

* a ``str`` — shorthand for ``Answer(text)``;
* :class:`Answer` — a normal answer: text, token counts, optional logprobs;
* :class:`Error` — an HTTP error status with the service's documented error body;
* :class:`Delay` — sleep, then send another reply (provokes client timeouts);
* :class:`Malformed` — raw bytes with any status and content type;
* :class:`Drop` — close the connection without answering.

:meth:`FakeServer.push` appends replies while the server runs.

**Reading requests.**  ``srv.requests`` is the list of
:class:`RecordedRequest` received so far (all paths, in arrival order):
``method``, ``path``, ``headers`` (keys lower-cased), raw ``body`` and
``json`` (the parsed body, or ``None``).

:func:`closed_port_url` gives a loopback URL on which nothing listens (for
connection-refused tests).  Nothing here ever talks beyond loopback.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

__all__ = [
    "Answer", "Error", "Delay", "Malformed", "Drop", "Reply", "RecordedRequest",
    "Response", "FakeServer", "closed_port_url",
]


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Answer:
    """A normal answer.

    ``text``: what the model generated (the fakes cut it at the first stop
    sequence the request names, as the services do); ``tokens_in`` /
    ``tokens_out``: token counts to report (``tokens_out`` defaults to the
    number of logprobs, else the number of whitespace-separated words, at
    least 1); ``logprobs``: natural-log probability per generated token
    (returned only by services that support them and only when asked);
    ``tokens``: the token strings that go with ``logprobs`` (default: the
    text split into ``len(logprobs)`` pieces).
    """

    text: str = "ok"
    tokens_in: int = 10
    tokens_out: int | None = None
    logprobs: tuple[float, ...] | None = None
    tokens: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.logprobs is not None:
            object.__setattr__(self, "logprobs", tuple(float(x) for x in self.logprobs))
        if self.tokens is not None:
            object.__setattr__(self, "tokens", tuple(self.tokens))

    @property
    def n_out(self) -> int:
        """Output token count to report."""
        if self.tokens_out is not None:
            return self.tokens_out
        if self.logprobs:
            return len(self.logprobs)
        return max(1, len(self.text.split()))

    def token_pieces(self) -> list[str]:
        """Token strings for the logprobs: ``tokens`` or ``text`` cut into equal pieces."""
        n = len(self.logprobs or ())
        if self.tokens is not None:
            return list(self.tokens)
        if n == 0:
            return []
        step = max(1, -(-len(self.text) // n))
        pieces = [self.text[i * step:(i + 1) * step] for i in range(n)]
        return pieces


@dataclass(frozen=True)
class Error:
    """An HTTP error: ``status`` plus the service's documented error body.

    ``message`` is the human-readable text; ``type`` is the error type for
    services that have one (Anthropic: default derived from ``status``);
    ``headers`` are extra response headers (e.g. ``{"retry-after": "1"}``).
    """

    status: int
    message: str = "scripted error"
    type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` (wall time), then send ``then``.

    The wait ends early when the fake shuts down.  Writing the late reply to a
    client that already gave up is silently ignored.
    """

    seconds: float
    then: "Reply" = Answer()


@dataclass(frozen=True)
class Malformed:
    """Send ``body`` as is (``str`` is UTF-8 encoded) with ``status`` and ``content_type``."""

    body: bytes | str = b'{"response": "trunc'
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Drop:
    """Close the connection without sending any response."""


Reply = Union[str, Answer, Error, Delay, Malformed, Drop]


def as_reply(reply: Reply) -> Reply:
    """Normalise the ``str`` shorthand to :class:`Answer`; reject anything else unknown."""
    if isinstance(reply, str):
        return Answer(reply)
    if not isinstance(reply, (Answer, Error, Delay, Malformed, Drop)):
        raise TypeError(f"not a scripted reply: {reply!r}")
    return reply


# --------------------------------------------------------------------------- requests / responses


@dataclass
class RecordedRequest:
    """One HTTP request the fake received.  ``headers`` keys are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Response:
    """What a fake sends back: status, body bytes and headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> "Response":
        """A JSON response (``Content-Type: application/json``)."""
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> "Response":
        """A plain-text response."""
        return cls(status, text.encode(), {"Content-Type": content_type})


class _DropConnection(Exception):
    """Internal: the scripted reply is :class:`Drop`."""


# --------------------------------------------------------------------------- server


class FakeServer:
    """Base of the fakes: a threaded loopback HTTP server with a reply script.

    Subclasses implement :meth:`handle`, which maps a :class:`RecordedRequest`
    to a :class:`Response`, calling :meth:`render` on a scripted reply when the
    request is a model call.  The base records requests, runs the server
    thread, applies :class:`Delay` and :class:`Drop`, and turns
    :class:`Malformed` into bytes.
    """

    def __init__(self, replies: list[Reply] | tuple[Reply, ...] = ()):
        self._script: list[Reply] = [as_reply(r) for r in replies]
        self._last: Reply = Answer()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def __enter__(self) -> "FakeServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, port: int = 0) -> "FakeServer":
        """Bind ``127.0.0.1:port`` (0: a free port) and serve in a daemon thread; returns ``self``."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (pending delays end at once)."""
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        assert self._httpd is not None, "fake server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # ---- script

    def push(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._script.extend(as_reply(r) for r in replies)

    def next_reply(self) -> Reply:
        """Pop the next scripted reply (the last one repeats once the script is empty)."""
        with self._lock:
            if self._script:
                self._last = self._script.pop(0)
            return self._last

    def model_requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Recorded ``POST`` requests, optionally only those to ``path``."""
        return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    # ---- per-request plumbing

    def handle(self, req: RecordedRequest) -> Response:  # pragma: no cover - abstract
        """Answer one request; subclasses implement the service's protocol."""
        raise NotImplementedError

    def render(self, req: RecordedRequest, reply: Reply) -> Response:
        """Turn a scripted reply into a response: handles Delay/Malformed/Drop here,
        Answer and Error through :meth:`render_answer` / :meth:`render_error`."""
        reply = as_reply(reply)
        if isinstance(reply, Delay):
            self._closing.wait(reply.seconds)
            return self.render(req, reply.then)
        if isinstance(reply, Drop):
            raise _DropConnection()
        if isinstance(reply, Malformed):
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            return Response(reply.status, body, {"Content-Type": reply.content_type})
        if isinstance(reply, Error):
            resp = self.render_error(req, reply)
            resp.headers.update(reply.headers)
            return resp
        return self.render_answer(req, reply)

    def render_answer(self, req: RecordedRequest, answer: Answer) -> Response:  # pragma: no cover
        """Render a normal answer in the service's format."""
        raise NotImplementedError

    def render_error(self, req: RecordedRequest, error: Error) -> Response:  # pragma: no cover
        """Render an error in the service's format."""
        raise NotImplementedError

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)


def cut_at_stop(text: str, stops: list[str] | tuple[str, ...] | None) -> tuple[str, str | None]:
    """``text`` cut before the earliest of ``stops`` and the stop that matched (or ``None``)."""
    best, hit = len(text), None
    for stop in stops or ():
        if stop and (i := text.find(stop)) != -1 and i < best:
            best, hit = i, stop
    return text[:best], hit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access log
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = RecordedRequest(self.command, self.path.split("?", 1)[0],
                              {k.lower(): v for k, v in self.headers.items()}, body)
        fake = self.server_fake
        fake._record(req)
        try:
            resp = fake.handle(req)
        except _DropConnection:
            self.close_connection = True
            return
        try:
            self.send_response(resp.status)
            for key, value in resp.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            self.wfile.write(resp.body)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the socket
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _serve


_handed_out: set[int] = set()


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` for a port that was free a moment ago and has no listener.

    Each call gives a port not handed out before in this process, so two
    calls name two different hosts.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return f"http://127.0.0.1:{port}"
