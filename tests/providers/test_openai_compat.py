"""The OpenAI-compatible adapter against a fake ``/v1/chat/completions`` server on loopback."""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import ValidationError

from core.errors import ModelReinsError
from core.http_client import HttpClient
from core.models import Usage
from core.providers import provider_class
from core.providers.base import TextDelta
from core.providers.openai_compat import OpenAICompatConfig, OpenAICompatProvider
from tests.fakes import Mode, fake_openai, fake_upstream_in_thread
from tests.providers.helpers import (
    KEY,
    ask,
    assert_no_secret,
    drain,
    events_of,
    failure,
    refused_url,
)


def adapter(http: HttpClient, base_url: str, **keys: Any) -> OpenAICompatProvider:
    config = OpenAICompatConfig.model_validate(
        {"type": "openai-compat", "apiKey": KEY, "baseUrl": base_url, "model": "gpt-test", **keys}
    )
    return OpenAICompatProvider("lmstudio", config, http)


def test_registry_maps_the_type_to_this_adapter() -> None:
    assert provider_class("openai-compat") is OpenAICompatProvider


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({}, "baseUrl"),
        ({"baseUrl": "127.0.0.1:1234/v1"}, "http"),
        ({"baseUrl": "http://h/v1", "authHeader": "API-KEY"}, "apiKey"),
        ({"baseUrl": "http://h/v1", "stream": "sometimes"}, "stream"),
    ],
)
def test_config_rejects_bad_keys(keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        OpenAICompatConfig.model_validate({"type": "openai-compat", **keys})


def test_config_trims_the_base_url_and_hides_the_key() -> None:
    config = OpenAICompatConfig.model_validate(
        {"type": "openai-compat", "baseUrl": "http://127.0.0.1:1234/v1/", "apiKey": KEY}
    )
    assert config.base_url == "http://127.0.0.1:1234/v1"
    assert config.stream is False
    assert config.secret_fields() == ("api_key",)
    assert KEY not in repr(config)


async def test_complete_sends_a_chat_completions_request(http: HttpClient) -> None:
    async with fake_openai(reply="Hi there") as up:
        provider = adapter(http, up.url, systemPrompt="be brief", maxTokens=64)
        done = await provider.complete(ask("hello", options={"temperature": 0.3}))
        request = up.last
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "gpt-test",
        "max_tokens": 64,
        "temperature": 0.3,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
        "stream": False,
    }
    assert done.text == "Hi there"
    assert done.model == "gpt-test"
    assert done.usage == Usage(input_tokens=3, output_tokens=2)


async def test_auth_header_sends_the_key_under_that_name(http: HttpClient) -> None:
    async with fake_openai() as up:
        await adapter(http, up.url, authHeader="API-KEY").complete(ask())
        request = up.last
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers


async def test_without_a_key_no_auth_header_is_sent(http: HttpClient) -> None:
    async with fake_openai() as up:
        await adapter(http, up.url, apiKey=None).complete(ask())
        request = up.last
    assert "authorization" not in request.headers


async def test_options_never_replace_structural_fields(http: HttpClient) -> None:
    async with fake_openai() as up:
        options = {"model": "x", "messages": [], "stream": True, "max_tokens": 7, "seed": 1}
        await adapter(http, up.url, maxTokens=64).complete(ask("hi", options=options))
        request = up.last
    assert request.json == {
        "model": "gpt-test",
        "max_tokens": 7,
        "seed": 1,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


async def test_stream_yields_deltas_then_usage(http: HttpClient) -> None:
    async with fake_openai(reply="one two three") as up:
        deltas, end = await drain(adapter(http, up.url), ask("a b c d"))
        request = up.last
    assert request.json is not None
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert deltas == ["one ", "two ", "three"]
    assert end.model == "gpt-test"
    assert end.usage == Usage(input_tokens=4, output_tokens=3)


async def test_stream_config_makes_complete_stream_upstream(http: HttpClient) -> None:
    async with fake_openai(reply="assembled from deltas") as up:
        done = await adapter(http, up.url, stream=True).complete(ask("x y"))
        request = up.last
    assert request.json is not None
    assert request.json["stream"] is True
    assert done.text == "assembled from deltas"
    assert done.usage == Usage(input_tokens=2, output_tokens=3)


async def test_without_a_model_the_call_is_a_validation_error(http: HttpClient) -> None:
    async with fake_openai() as up:
        with pytest.raises(ModelReinsError) as caught:
            await adapter(http, up.url, model=None).complete(ask())
    assert caught.value.code == "VALIDATION_ERROR"


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
    async with fake_openai(mode=mode) as up:
        deltas, error = await failure(adapter(http, up.url), ask(), streaming=streaming)
    assert (error.code, error.retriable, error.provider) == (code, retriable, "lmstudio")
    assert deltas == before
    assert_no_secret(error)


@pytest.mark.parametrize("auth_header", [None, "API-KEY"])
async def test_rejected_key_is_never_echoed(
    http: HttpClient, auth_header: str | None
) -> None:
    async with fake_openai(mode="unauthorized") as up:
        provider = adapter(http, up.url, authHeader=auth_header)
        _, error = await failure(provider, ask(), streaming=False)
    assert "rejected the credentials" in error.message
    assert_no_secret(error)


async def test_rate_limit_carries_retry_after(http: HttpClient) -> None:
    async with fake_openai(mode="rate_limit") as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=True)
    assert error.retry_after == 7.0


async def test_malformed_answer_is_a_bad_upstream_payload(http: HttpClient) -> None:
    async with fake_openai(mode="malformed") as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=False)
    assert error.message.startswith("bad upstream payload")


@pytest.mark.parametrize(
    ("mode", "streaming", "before"),
    [
        ("hang", False, []),
        ("hang", True, []),
        ("stall", True, ["partial "]),
    ],
)
async def test_silence_beyond_the_timeout_is_provider_timeout(
    http: HttpClient, mode: Mode, streaming: bool, before: list[str]
) -> None:
    async with fake_openai(mode=mode) as up:
        provider = adapter(http, up.url, timeout=300)
        deltas, error = await failure(provider, ask(), streaming=streaming)
    assert (error.code, error.retriable) == ("PROVIDER_TIMEOUT", True)
    assert deltas == before


async def test_stall_with_stream_config_times_out_in_complete(http: HttpClient) -> None:
    async with fake_openai(mode="stall") as up:
        provider = adapter(http, up.url, timeout=300, stream=True)
        _, error = await failure(provider, ask(), streaming=False)
    assert error.code == "PROVIDER_TIMEOUT"


async def test_abandoned_stream_releases_its_connection() -> None:
    # One connection in the pool: if the stalled stream kept it, the next call could not run.
    async with (
        HttpClient(max_connections=1) as http,
        fake_openai(mode="stall") as up,
    ):
        provider = adapter(http, up.url, timeout=5000)
        with anyio.fail_after(5):
            async with aclosing(events_of(provider, ask())) as events:
                first = await anext(events)
            assert first == TextDelta("partial ")
            up.mode = "success"
            done = await provider.complete(ask("next"))
    assert done.text == "next"


async def test_connection_refused_is_retriable(http: HttpClient) -> None:
    with refused_url() as url:
        _, error = await failure(adapter(http, url + "/v1"), ask(), streaming=False)
    assert (error.code, error.retriable) == ("PROVIDER_ERROR", True)
    assert "connection refused" in error.message


async def test_a_key_that_cannot_be_a_header_never_leaks(http: HttpClient) -> None:
    async with fake_openai() as up:
        provider = adapter(http, up.url, apiKey=f"{KEY}\r\nx-evil: 1")
        _, error = await failure(provider, ask(), streaming=False)
        assert up.requests == []
    assert (error.code, error.retriable) == ("PROVIDER_ERROR", False)
    assert_no_secret(error)


@pytest.mark.parametrize("auth_header", [None, "API-KEY"])
async def test_ping_lists_models_with_the_same_auth(
    http: HttpClient, auth_header: str | None
) -> None:
    async with fake_openai() as up:
        await adapter(http, up.url, authHeader=auth_header).ping()
        request = up.last
    assert (request.method, request.path) == ("GET", "/v1/models")
    name, value = ("api-key", KEY) if auth_header else ("authorization", f"Bearer {KEY}")
    assert request.headers[name] == value


@pytest.mark.parametrize(
    ("mode", "code", "retriable"),
    [
        ("unauthorized", "PROVIDER_ERROR", False),
        ("error500", "PROVIDER_ERROR", True),
        ("hang", "PROVIDER_TIMEOUT", True),
    ],
)
async def test_ping_failure_is_classified(
    http: HttpClient, mode: Mode, code: str, retriable: bool
) -> None:
    async with fake_openai(mode=mode) as up:
        with pytest.raises(ModelReinsError) as caught:
            await adapter(http, up.url, timeout=300).ping()
    assert (caught.value.code, caught.value.retriable) == (code, retriable)


def test_the_fake_serves_sync_clients_from_a_thread_and_releases_hangs() -> None:
    with (
        fake_upstream_in_thread("openai", reply="from a thread") as up,
        httpx2.Client(trust_env=False, timeout=5) as client,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answer = client.post(up.url + "/chat/completions", json=body).json()
        up.mode = "hang"
        with pytest.raises(httpx2.ReadTimeout):
            client.post(up.url + "/chat/completions", json=body, timeout=0.2)
    assert answer["choices"][0]["message"]["content"] == "from a thread"
    assert [r.path for r in up.requests] == ["/v1/chat/completions"] * 2


@pytest.mark.parametrize("value", [float("nan"), datetime(2026, 1, 1, tzinfo=UTC), {1, 2}])
async def test_options_json_cannot_carry_are_a_validation_error(
    http: HttpClient, value: object
) -> None:
    async with fake_openai() as up:
        with pytest.raises(ModelReinsError) as caught:
            await adapter(http, up.url).complete(ask(options={"odd": value}))
        assert up.requests == []
    assert caught.value.code == "VALIDATION_ERROR"
    details = caught.value.details
    assert isinstance(details, list)
    assert details[0]["path"] == "options"


async def test_finished_streams_leave_the_connection_reusable(http: HttpClient) -> None:
    async with fake_openai() as up:
        provider = adapter(http, up.url, stream=True)
        await provider.complete(ask())
        await drain(provider, ask())
    assert len({r.client_port for r in up.requests}) == 1
