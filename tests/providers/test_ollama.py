"""OllamaProvider through the official ``ollama`` client against the loopback fake."""

from __future__ import annotations

import math
import time

import ollama
import pytest

from swarmd.config import ModelConfig
from swarmd.router.providers.base import Prompt, ProviderError, ProviderUnavailable
from swarmd.router.providers.ollama import OllamaProvider
from tests.fakes import Answer, Delay, Drop, Error, Malformed, closed_port_url
from tests.fakes.ollama_server import FakeOllama

MODEL = "llama3.1:8b"
PROMPT = Prompt(prefix="Classify the commit.\nMessage: add flag\nType: feat\n\n", body="Message: crash on empty\nType:")


def config(*hosts: str, timeout_s: float = 0.5) -> ModelConfig:
    return ModelConfig(provider="ollama", model=MODEL, hosts=list(hosts), price_per_mtok_in=0,
                       price_per_mtok_out=0, context_window=8192, timeout_s=timeout_s)


class Clock:
    """A hand-driven monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- answers


def test_answer_carries_text_tokens_logprobs_and_host():
    answer = Answer(" fix", tokens_in=31, tokens_out=2, logprobs=[-0.1, -0.3], tokens=[" f", "ix"])
    with FakeOllama([answer]) as srv:
        out = OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=8)
    assert out.text == " fix"
    assert (out.tokens_in, out.tokens_out) == (31, 2)
    assert out.token_logprobs == pytest.approx([-0.1, -0.3])
    assert out.mean_token_prob == pytest.approx(math.exp(-0.2))
    assert out.host == srv.url
    assert 0 < out.latency_ms < 5000
    assert out.extra["done_reason"] == "stop"


def test_request_sends_raw_prompt_model_options_and_asks_for_logprobs():
    with FakeOllama(["feat"]) as srv:
        OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=8)
    (req,) = srv.requests
    assert (req.method, req.path) == ("POST", "/api/generate")
    sent = req.json
    assert sent["model"] == MODEL
    assert sent["prompt"] == PROMPT.text
    assert sent["raw"] is True and sent["stream"] is False and sent["logprobs"] is True
    assert sent["options"] == {"num_predict": 8, "temperature": 0, "stop": ["\n\n"]}


def test_server_without_logprobs_gives_none():
    with FakeOllama([Answer("feat", tokens_in=5, tokens_out=1)]) as srv:
        out = OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=4)
    assert out.token_logprobs is None and out.mean_token_prob is None
    assert (out.text, out.tokens_in, out.tokens_out) == ("feat", 5, 1)


def test_omitted_counts_read_as_zero():
    # Ollama's Go structs use omitempty: a count of 0 is left out of the JSON.
    with FakeOllama([Malformed(b'{"model": "m", "response": "", "done": true}')]) as srv:
        out = OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=4)
    assert (out.text, out.tokens_in, out.tokens_out) == ("", 0, 0)


# --------------------------------------------------------------------------- HTTP errors


def test_model_not_found_is_a_provider_error_naming_host():
    with FakeOllama(models=["other:1b"]) as srv:
        with pytest.raises(ProviderError, match=r"HTTP 404: model \"llama3.1:8b\" not found") as info:
            OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=4)
    assert srv.url in str(info.value)


@pytest.mark.parametrize("status, raised, reason", [
    (400, ProviderError, "HTTP 400: server says no"),
    (500, ProviderError, "HTTP 500: server says no"),
    (429, ProviderUnavailable, "busy: HTTP 429: server says no"),   # busy: back off
    (503, ProviderUnavailable, "busy: HTTP 503: server says no"),   # Ollama's "server busy" (queue full)
])
def test_http_error_mapping_and_no_cooldown(status, raised, reason):
    with FakeOllama([Error(status, "server says no")]) as srv:
        provider = OllamaProvider(config(srv.url))
        with pytest.raises(raised, match=reason):
            provider.complete(PROMPT, max_tokens=4)
    assert provider.hosts_down() == {}  # the host answered: it is not down


# --------------------------------------------------------------------------- transport failures


def test_timeout_is_unavailable_and_cools_the_host_down():
    with FakeOllama([Delay(3.0)]) as srv:
        provider = OllamaProvider(config(srv.url, timeout_s=0.5))
        start = time.perf_counter()
        with pytest.raises(ProviderUnavailable, match="timed out after 0.5s"):
            provider.complete(PROMPT, max_tokens=4)
        assert time.perf_counter() - start < 2.0
        assert srv.url in provider.hosts_down()


def test_connection_refused_is_unavailable_naming_the_host():
    url = closed_port_url()
    with pytest.raises(ProviderUnavailable, match="connection failed") as info:
        OllamaProvider(config(url)).complete(PROMPT, max_tokens=4)
    assert url in str(info.value)


def test_dropped_connection_is_unavailable():
    with FakeOllama([Drop()]) as srv:
        with pytest.raises(ProviderUnavailable, match="RemoteProtocolError"):
            OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=4)


@pytest.mark.parametrize("reply", [
    Malformed(b'{"response": "trunc'),                                     # not JSON
    Malformed(b'[1, 2, 3]'),                                               # JSON, not an object
    Malformed(b'{"done": true, "eval_count": 3}'),                         # no response field
    Malformed(b'{"response": "x", "done": false}'),                        # not done
    Malformed(b'{"response": "x", "done": true, "eval_count": "many"}'),   # wrong type
    Malformed(b'{"response": "x", "done": true, "logprobs": [{"token": "x", "logprob": NaN}]}'),
    Malformed(b"<html>proxy error</html>", content_type="text/html"),
], ids=["truncated", "array", "no-response", "not-done", "bad-count", "nan-logprob", "html"])
def test_malformed_reply_is_a_provider_error(reply):
    with FakeOllama([reply]) as srv:
        with pytest.raises(ProviderError, match="malformed reply"):
            OllamaProvider(config(srv.url)).complete(PROMPT, max_tokens=4)


# --------------------------------------------------------------------------- several hosts


def test_failover_to_second_host_when_first_refuses():
    down = closed_port_url()
    with FakeOllama([Answer("feat", tokens_in=9, tokens_out=1)]) as srv:
        provider = OllamaProvider(config(down, srv.url))
        out = provider.complete(PROMPT, max_tokens=4)
    assert out.host == srv.url and out.text == "feat"
    assert list(provider.hosts_down()) == [down]


def test_down_host_is_skipped_until_cooldown_ends():
    clock = Clock()
    with FakeOllama([Drop()]) as bad, FakeOllama(["feat"]) as good:
        provider = OllamaProvider(config(bad.url, good.url), cooldown_s=60, clock=clock)
        assert provider.complete(PROMPT, 4).host == good.url
        assert len(bad.requests) == 1
        clock.now += 30
        assert provider.complete(PROMPT, 4).host == good.url
        assert len(bad.requests) == 1            # still cooling down: not tried
        clock.now += 31
        assert provider.complete(PROMPT, 4).host == good.url
        assert len(bad.requests) == 2            # cool-down over: tried again
        assert len(good.requests) == 3


def test_all_hosts_failing_names_every_host_then_fails_fast():
    clock = Clock()
    first, second = closed_port_url(), closed_port_url()
    provider = OllamaProvider(config(first, second), clock=clock)
    with pytest.raises(ProviderUnavailable) as info:
        provider.complete(PROMPT, max_tokens=4)
    assert first in str(info.value) and second in str(info.value)
    with pytest.raises(ProviderUnavailable, match="cooling down"):
        provider.complete(PROMPT, max_tokens=4)


def test_a_host_that_answers_badly_does_not_fail_over():
    with FakeOllama([Error(500, "boom")]) as first, FakeOllama(["feat"]) as second:
        with pytest.raises(ProviderError, match="boom"):
            OllamaProvider(config(first.url, second.url)).complete(PROMPT, max_tokens=4)
    assert second.requests == []


def test_close_is_idempotent():
    with FakeOllama(["feat"]) as srv:
        provider = OllamaProvider(config(srv.url))
        provider.complete(PROMPT, 4)
        provider.close()
        provider.close()
        assert provider.complete(PROMPT, 4).text == "feat"  # a fresh client after close


# --------------------------------------------------------------------------- the fake itself


def test_fake_speaks_chat_and_streaming_to_the_official_client():
    with FakeOllama([Answer("hello there", logprobs=[-0.5, -0.25]), "bye"], models=[MODEL]) as srv:
        client = ollama.Client(host=srv.url, timeout=2)
        chunks = list(client.generate(model=MODEL, prompt="hi", stream=True, logprobs=True))
        assert "".join(c.response for c in chunks) == "hello there"
        assert chunks[-1].done and chunks[-1].eval_count == 2
        chat = client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert chat.message.content == "bye" and chat.done
        assert [m.model for m in client.list().models] == [MODEL]
        client.close()
