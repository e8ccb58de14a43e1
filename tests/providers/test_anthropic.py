"""The Anthropic adapter against a fake Messages API on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import ValidationError

from core.errors import ModelReinsError
from core.http_client import HttpClient
from core.models import Usage
from core.providers import provider_class
from core.providers.anthropic import AnthropicConfig, AnthropicProvider
from tests.fakes import Mode, fake_anthropic
from tests.providers.helpers import (
    KEY,
    ask,
    assert_no_secret,
    drain,
    failure,
    refused_url,
)


def adapter(http: HttpClient, base_url: str, **keys: Any) -> AnthropicProvider:
    config = AnthropicConfig.model_validate(
        {"type": "anthropic", "apiKey": KEY, "baseUrl": base_url, "model": "claude-test", **keys}
    )
    return AnthropicProvider("claude", config, http)


def test_registry_maps_the_type_to_this_adapter() -> None:
    assert provider_class("anthropic") is AnthropicProvider


def test_config_defaults_and_secret_fields() -> None:
    config = AnthropicConfig.model_validate({"type": "anthropic", "apiKey": f" {KEY}\n"})
    assert config.base_url == "https://api.anthropic.com"
    assert config.anthropic_version == "2023-06-01"
    assert config.api_key == KEY
    assert config.secret_fields() == ("api_key",)
    assert KEY not in repr(config)


def test_config_requires_an_api_key() -> None:
    with pytest.raises(ValidationError, match="apiKey"):
        AnthropicConfig.model_validate({"type": "anthropic"})


async def test_complete_sends_the_messages_api_request(http: HttpClient) -> None:
    async with fake_anthropic(reply="Hi there") as up:
        done = await adapter(http, up.url).complete(ask("hello"))
        request = up.last
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hello"}],
    }
    assert done.text == "Hi there"
    assert done.model == "claude-test"
    assert done.usage == Usage(input_tokens=1, output_tokens=2)
    assert done.truncated is False


async def test_config_defaults_fill_the_body_and_the_call_wins(http: HttpClient) -> None:
    async with fake_anthropic() as up:
        provider = adapter(
            http,
            up.url,
            maxTokens=8192,
            systemPrompt="be brief",
            anthropicVersion="2024-01-01",
            options={"temperature": 0.2, "top_k": 5, "model": "ignored", "stream": True},
        )
        await provider.complete(ask("one"))
        defaults = up.last
        call = ask(
            "two",
            model="claude-other",
            system="be loud",
            max_tokens=10,
            options={"temperature": 0.9},
        )
        await provider.complete(call)
        overridden = up.last
    assert defaults.headers["anthropic-version"] == "2024-01-01"
    assert defaults.json == {
        "model": "claude-test",
        "max_tokens": 8192,
        "temperature": 0.2,
        "top_k": 5,
        "messages": [{"role": "user", "content": "one"}],
        "system": "be brief",
    }
    assert overridden.json == {
        "model": "claude-other",
        "max_tokens": 10,
        "temperature": 0.9,
        "top_k": 5,
        "messages": [{"role": "user", "content": "two"}],
        "system": "be loud",
    }


async def test_stream_yields_text_deltas_then_usage(http: HttpClient) -> None:
    async with fake_anthropic(reply="one two three") as up:
        deltas, end = await drain(adapter(http, up.url), ask("a b"))
        request = up.last
    assert request.json is not None
    assert request.json["stream"] is True
    assert deltas == ["one ", "two ", "three"]
    assert end.model == "claude-test"
    assert end.usage == Usage(input_tokens=2, output_tokens=3)


async def test_without_a_model_the_call_is_a_validation_error(http: HttpClient) -> None:
    async with fake_anthropic() as up:
        provider = adapter(http, up.url, model=None)
        with pytest.raises(ModelReinsError) as caught:
            await provider.complete(ask())
        assert up.requests == []
    assert caught.value.code == "VALIDATION_ERROR"
    assert "'claude' has no default model" in caught.value.message


FAILURES: list[tuple[Mode, bool, str, bool, list[str]]] = [
    ("rate_limit", False, "RATE_LIMITED", True, []),
    ("rate_limit", True, "RATE_LIMITED", True, []),
    ("error500", False, "PROVIDER_ERROR", True, []),
    ("error500", True, "PROVIDER_ERROR", True, []),
    ("unauthorized", False, "PROVIDER_ERROR", False, []),
    ("unauthorized", True, "PROVIDER_ERROR", False, []),
    ("malformed", False, "PROVIDER_ERROR", True, []),
    ("malformed", True, "PROVIDER_ERROR", True, ["partial "]),
    ("midstream_error", False, "PROVIDER_ERROR", True, []),
    ("midstream_error", True, "PROVIDER_ERROR", True, ["partial "]),
    ("drop", False, "PROVIDER_ERROR", True, []),
    ("drop", True, "PROVIDER_ERROR", True, ["partial "]),
    ("truncated", True, "PROVIDER_ERROR", True, ["partial "]),
]


@pytest.mark.parametrize(("mode", "streaming", "code", "retriable", "before"), FAILURES)
async def test_upstream_failures_raise_classified(
    http: HttpClient,
    mode: Mode,
    streaming: bool,
    code: str,
    retriable: bool,
    before: list[str],
) -> None:
    async with fake_anthropic(mode=mode) as up:
        deltas, error = await failure(adapter(http, up.url), ask(), streaming=streaming)
    assert (error.code, error.retriable, error.provider) == (code, retriable, "claude")
    assert deltas == before
    assert_no_secret(error)


async def test_rate_limit_carries_retry_after_seconds(http: HttpClient) -> None:
    async with fake_anthropic(mode="rate_limit") as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=False)
    assert error.retry_after == 7.0


async def test_rate_limit_reads_an_http_date_retry_after(http: HttpClient) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    async with fake_anthropic(mode="rate_limit", retry_after=when) as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=False)
    assert error.code == "RATE_LIMITED"
    assert error.retry_after is not None
    assert 100 <= error.retry_after <= 121


async def test_rejected_key_is_never_echoed(http: HttpClient) -> None:
    async with fake_anthropic(mode="unauthorized") as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=False)
        assert KEY in up.last.headers["x-api-key"]
    assert "rejected the credentials" in error.message
    assert_no_secret(error)


async def test_error_event_in_a_stream_is_classified_by_its_type(
    http: HttpClient,
) -> None:
    async with fake_anthropic(mode="midstream_error") as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=True)
    assert error.message == (
        "upstream server error (overloaded_error inside a 200 answer): Overloaded"
    )


@pytest.mark.parametrize(
    ("mode", "streaming", "before"),
    [
        ("hang", False, []),
        ("hang", True, []),
        ("stall", False, []),
        ("stall", True, ["partial "]),
    ],
)
async def test_silence_beyond_the_timeout_is_provider_timeout(
    http: HttpClient, mode: Mode, streaming: bool, before: list[str]
) -> None:
    async with fake_anthropic(mode=mode) as up:
        provider = adapter(http, up.url, timeout=300)
        deltas, error = await failure(provider, ask(), streaming=streaming)
    assert (error.code, error.retriable) == ("PROVIDER_TIMEOUT", True)
    assert error.message.endswith("stopped answering within 0.3 s")
    assert deltas == before


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused_is_retriable_and_names_the_host(
    http: HttpClient, streaming: bool
) -> None:
    with refused_url() as url:
        _, error = await failure(adapter(http, url), ask(), streaming=streaming)
    assert (error.code, error.retriable) == ("PROVIDER_ERROR", True)
    assert "connection refused" in error.message
    assert url.removeprefix("http://") in error.message
    assert_no_secret(error)


async def test_ping_lists_models_with_the_same_auth(http: HttpClient) -> None:
    async with fake_anthropic() as up:
        await adapter(http, up.url).ping()
        request = up.last
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("mode", "code", "retriable"),
    [
        ("unauthorized", "PROVIDER_ERROR", False),
        ("error500", "PROVIDER_ERROR", True),
        ("rate_limit", "RATE_LIMITED", True),
    ],
)
async def test_ping_failure_is_classified(
    http: HttpClient, mode: Mode, code: str, retriable: bool
) -> None:
    async with fake_anthropic(mode=mode) as up:
        with pytest.raises(ModelReinsError) as caught:
            await adapter(http, up.url).ping()
    assert (caught.value.code, caught.value.retriable) == (code, retriable)
    assert_no_secret(caught.value)


async def test_ping_of_an_unreachable_host_fails(http: HttpClient) -> None:
    with refused_url() as url, pytest.raises(ModelReinsError) as caught:
        await adapter(http, url).ping()
    assert caught.value.code == "PROVIDER_ERROR"


async def test_finished_streams_leave_the_connection_reusable(http: HttpClient) -> None:
    async with fake_anthropic() as up:
        provider = adapter(http, up.url)
        await drain(provider, ask())
        await drain(provider, ask())
        await provider.complete(ask())
    assert len({r.client_port for r in up.requests}) == 1
