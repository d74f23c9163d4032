"""AnthropicProvider through the official ``anthropic`` SDK against the loopback fake.

The SDK retries once (``max_retries=1``) on 429, 5xx, timeouts and connection
errors, sleeping ~0.4-0.5 s in between: the tests that provoke those take
about half a second each.
"""

from __future__ import annotations

import logging
import time

import pytest
from loguru import logger
from pydantic import SecretStr

from swarmd.config import ModelConfig
from swarmd.router.providers.anthropic import AnthropicProvider
from swarmd.router.providers.base import Prompt, ProviderError, ProviderUnavailable
from tests.fakes import Answer, Delay, Drop, Error, Malformed, closed_port_url
from tests.fakes.anthropic_server import FakeAnthropic, api_key_of

MODEL = "claude-sonnet-4-5"  # the model llm_config.yaml ships
# anthropic 2.12.0 warns on every call that claude-sonnet-4-5 reaches end-of-life on 2026-11-30.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
KEY = "sk-ant-TEST-7f3c9e1d-do-not-leak"
PROMPT = Prompt(prefix="Think step by step and answer the question.\n", body="Question: capital of France?\nAnswer:")


def config(base_url: str | None, api_key: str | None = KEY, timeout_s: float = 0.5) -> ModelConfig:
    return ModelConfig(provider="anthropic", model=MODEL, price_per_mtok_in=3.0, price_per_mtok_out=15.0,
                       context_window=200000, timeout_s=timeout_s, base_url=base_url,
                       api_key=SecretStr(api_key) if api_key is not None else None)


@pytest.fixture
def logs():
    """Everything loguru prints while the test runs (all levels)."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message} {extra}")
    yield lines
    logger.remove(sink)


# --------------------------------------------------------------------------- answers


def test_answer_carries_text_and_usage():
    with FakeAnthropic([Answer("Paris.", tokens_in=25, tokens_out=3)], api_key=KEY) as srv:
        out = AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=64)
    assert (out.text, out.tokens_in, out.tokens_out) == ("Paris.", 25, 3)
    assert out.token_logprobs is None and out.mean_token_prob is None
    assert 0 < out.latency_ms < 5000
    assert out.host.startswith(srv.url)
    assert out.extra["stop_reason"] == "end_turn" and out.extra["id"].startswith("msg_fake_")


def test_request_carries_model_max_tokens_user_message_and_key():
    with FakeAnthropic(["Paris."], api_key=KEY) as srv:
        AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=64)
    (req,) = srv.requests
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.json["model"] == MODEL and req.json["max_tokens"] == 64
    assert req.json["messages"] == [{"role": "user", "content": PROMPT.text}]
    assert api_key_of(req) == KEY            # anthropic 2.x sends it as "Authorization: Bearer"
    assert req.headers["anthropic-version"]


def test_whitespace_stops_are_applied_locally_others_are_sent():
    # The API rejects whitespace-only stop sequences; the fake enforces that too.
    prompt = Prompt(prefix="List:", body=" a", stop=("\n\n", "###"))
    with FakeAnthropic([Answer("one\n\ntwo###three", tokens_out=6)], api_key=KEY) as srv:
        out = AnthropicProvider(config(srv.url)).complete(prompt, max_tokens=16)
    assert srv.requests[0].json["stop_sequences"] == ["###"]
    assert out.text == "one" and out.tokens_out == 6


def test_default_prompt_stop_sends_no_stop_sequences():
    with FakeAnthropic([Answer("Paris.\n\nAlso, Lyon is")], api_key=KEY) as srv:
        out = AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
    assert "stop_sequences" not in srv.requests[0].json
    assert out.text == "Paris."


# --------------------------------------------------------------------------- no key


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_api_key_is_unavailable_without_network(key, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")  # the provider reads only the config
    with FakeAnthropic(["Paris."]) as srv:
        provider = AnthropicProvider(config(srv.url, api_key=key))
        with pytest.raises(ProviderUnavailable, match="^no ANTHROPIC_API_KEY configured$"):
            provider.complete(PROMPT, max_tokens=16)
    assert srv.requests == []


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("status, kind, attempts", [
    (400, "invalid_request_error", 1),
    (403, "permission_error", 1),
    (404, "not_found_error", 1),
    (500, "api_error", 2),          # the SDK retries 5xx once
])
def test_http_error_is_a_provider_error(status, kind, attempts):
    with FakeAnthropic([Error(status, "scripted failure")], api_key=KEY) as srv:
        with pytest.raises(ProviderError, match=f"HTTP {status} {kind}: scripted failure"):
            AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
    assert len(srv.requests) == attempts


@pytest.mark.parametrize("status, kind", [(429, "rate_limit_error"), (529, "overloaded_error")])
def test_rate_limit_and_overload_are_unavailable(status, kind):
    with FakeAnthropic([Error(status, "Overloaded")], api_key=KEY) as srv:
        with pytest.raises(ProviderUnavailable, match=f"HTTP {status} {kind}: Overloaded"):
            AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
    assert len(srv.requests) == 2  # one SDK retry, no more


def test_overload_then_answer_succeeds_through_the_sdk_retry():
    with FakeAnthropic([Error(529, "Overloaded"), Answer("Paris.")], api_key=KEY) as srv:
        out = AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
    assert out.text == "Paris." and len(srv.requests) == 2


def test_wrong_key_401_never_shows_the_key(logs, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeAnthropic(api_key="sk-ant-the-right-one") as srv:
        with pytest.raises(ProviderError, match="HTTP 401 authentication_error") as info:
            AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
    exc = info.value
    assert api_key_of(srv.requests[0]) == KEY  # the key did go out, to the fake
    assert KEY not in str(exc) and KEY not in repr(exc)
    assert exc.__cause__ is None and exc.__context__ is None  # the SDK error (with headers) is not chained
    assert logs and not any(KEY in line for line in logs)
    assert KEY not in caplog.text


def test_a_key_echoed_by_the_server_is_scrubbed(logs):
    with FakeAnthropic([Error(400, f"invalid key {KEY} for this workspace")], api_key=KEY) as srv:
        with pytest.raises(ProviderError) as info:
            AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
    assert KEY not in str(info.value) and "invalid key *** for" in str(info.value)
    assert not any(KEY in line for line in logs)


def test_repr_hides_the_key():
    provider = AnthropicProvider(config("http://127.0.0.1:9"))
    assert KEY not in repr(provider) and KEY not in repr(provider.model)


# --------------------------------------------------------------------------- transport failures


def test_timeout_is_unavailable():
    with FakeAnthropic([Delay(3.0)], api_key=KEY) as srv:
        start = time.perf_counter()
        with pytest.raises(ProviderUnavailable, match="timed out after 0.5s"):
            AnthropicProvider(config(srv.url, timeout_s=0.5)).complete(PROMPT, max_tokens=16)
        elapsed = time.perf_counter() - start
    # two 0.5 s attempts and one short back-off (~1.5 s), not two waits for the 3 s reply (>= 6 s): the
    # margin is for a busy machine, the bound still tells the two apart
    assert elapsed < 5.5
    assert len(srv.requests) == 2


def test_connection_refused_is_unavailable():
    with pytest.raises(ProviderUnavailable, match="connection failed"):
        AnthropicProvider(config(closed_port_url())).complete(PROMPT, max_tokens=16)


def test_dropped_connection_is_unavailable():
    with FakeAnthropic([Drop()], api_key=KEY) as srv:
        with pytest.raises(ProviderUnavailable, match="connection failed"):
            AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)


@pytest.mark.parametrize("reply", [
    Malformed(b'{"id": "msg_1", "type": "mess'),
    Malformed(b"<html>bad gateway</html>", content_type="text/html"),
    Malformed(b'{"id": "msg_1", "type": "message", "role": "assistant", "content": "Paris",'
              b' "usage": {"input_tokens": 1, "output_tokens": 1}}'),
    Malformed(b'{"id": "msg_1", "type": "message", "role": "assistant",'
              b' "content": [{"type": "text", "text": "Paris"}]}'),
    Malformed(b'{"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "Paris"}],'
              b' "usage": {"input_tokens": "many", "output_tokens": 1}}'),
], ids=["truncated", "html", "content-not-list", "no-usage", "bad-count"])
def test_malformed_reply_is_a_provider_error(reply):
    with FakeAnthropic([reply], api_key=KEY) as srv:
        with pytest.raises(ProviderError, match="malformed reply"):
            AnthropicProvider(config(srv.url)).complete(PROMPT, max_tokens=16)
