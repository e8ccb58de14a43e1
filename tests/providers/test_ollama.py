"""The Ollama adapter against a fake native API (``/api/chat``, NDJSON streams) on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ModelReinsError
from core.http_client import HttpClient
from core.models import Usage
from core.providers import provider_class
from core.providers.ollama import OllamaConfig, OllamaProvider
from tests.fakes import Mode, fake_ollama
from tests.providers.helpers import ask, drain, failure, refused_url


def adapter(http: HttpClient, base_url: str, **keys: Any) -> OllamaProvider:
    config = OllamaConfig.model_validate(
        {"type": "ollama", "baseUrl": base_url, "model": "llama-test", **keys}
    )
    return OllamaProvider("ollama", config, http)


def test_registry_maps_the_type_to_this_adapter() -> None:
    assert provider_class("ollama") is OllamaProvider


def test_config_defaults_to_the_local_daemon() -> None:
    config = OllamaConfig.model_validate({"type": "ollama"})
    assert config.base_url == "http://127.0.0.1:11434"
    assert config.secret_fields() == ()


async def test_complete_sends_a_native_chat_request(http: HttpClient) -> None:
    async with fake_ollama(reply="Hi there") as up:
        provider = adapter(http, up.url, systemPrompt="be brief")
        done = await provider.complete(ask("hello"))
        request = up.last
    assert (request.method, request.path) == ("POST", "/api/chat")
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "llama-test",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
        "stream": False,
    }
    assert done.text == "Hi there"
    assert done.model == "llama-test"
    assert done.usage == Usage(input_tokens=3, output_tokens=2)


@pytest.mark.parametrize(
    ("config_keys", "call_keys", "expected"),
    [
        ({"options": {"num_ctx": 32768}}, {}, {"num_ctx": 32768}),
        (
            {"options": {"num_ctx": 32768, "temperature": 0.1}},
            {"options": {"temperature": 0.7, "num_gpu": 1}},
            {"num_ctx": 32768, "temperature": 0.7, "num_gpu": 1},
        ),
        ({"maxTokens": 256}, {}, {"num_predict": 256}),
        ({"maxTokens": 256, "options": {"num_predict": 64}}, {}, {"num_predict": 64}),
        ({"maxTokens": 256}, {"max_tokens": 32}, {"num_predict": 32}),
        ({}, {"options": {"num_predict": 8}}, {"num_predict": 8}),
    ],
)
async def test_options_merge_config_then_call_and_max_tokens_becomes_num_predict(
    http: HttpClient,
    config_keys: dict[str, Any],
    call_keys: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    async with fake_ollama() as up:
        await adapter(http, up.url, **config_keys).complete(ask(**call_keys))
        request = up.last
    assert request.json is not None
    assert request.json["options"] == expected


async def test_no_options_means_no_options_object(http: HttpClient) -> None:
    async with fake_ollama() as up:
        await adapter(http, up.url).complete(ask())
        request = up.last
    assert request.json is not None
    assert "options" not in request.json


async def test_stream_yields_ndjson_deltas_then_counts(http: HttpClient) -> None:
    async with fake_ollama(reply="one two three") as up:
        deltas, end = await drain(adapter(http, up.url), ask("a b"))
        request = up.last
    assert request.json is not None
    assert request.json["stream"] is True
    assert deltas == ["one ", "two ", "three"]
    assert end.model == "llama-test"
    assert end.usage == Usage(input_tokens=2, output_tokens=3)


async def test_without_a_model_the_call_is_a_validation_error(http: HttpClient) -> None:
    async with fake_ollama() as up:
        with pytest.raises(ModelReinsError) as caught:
            await adapter(http, up.url, model=None).complete(ask(model=None))
    assert caught.value.code == "VALIDATION_ERROR"
    assert "provider 'ollama' has no default model" in caught.value.message


async def test_the_call_model_overrides_the_config(http: HttpClient) -> None:
    async with fake_ollama() as up:
        done = await adapter(http, up.url, model=None).complete(ask(model="qwen"))
        request = up.last
    assert request.json is not None
    assert request.json["model"] == "qwen"
    assert done.model == "qwen"


FAILURES: list[tuple[Mode, bool, str, bool, list[str]]] = [
    ("rate_limit", False, "RATE_LIMITED", True, []),
    ("error500", False, "PROVIDER_ERROR", True, []),
    ("error500", True, "PROVIDER_ERROR", True, []),
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
    async with fake_ollama(mode=mode) as up:
        deltas, error = await failure(adapter(http, up.url), ask(), streaming=streaming)
    assert (error.code, error.retriable, error.provider) == (code, retriable, "ollama")
    assert deltas == before


async def test_an_error_line_in_the_stream_is_quoted(http: HttpClient) -> None:
    async with fake_ollama(mode="midstream_error") as up:
        _, error = await failure(adapter(http, up.url), ask(), streaming=True)
    assert error.message == "upstream reported an error: in-band failure"


@pytest.mark.parametrize(
    ("mode", "streaming", "before"),
    [
        ("hang", False, []),
        ("stall", True, ["partial "]),
    ],
)
async def test_silence_beyond_the_timeout_is_provider_timeout(
    http: HttpClient, mode: Mode, streaming: bool, before: list[str]
) -> None:
    async with fake_ollama(mode=mode) as up:
        provider = adapter(http, up.url, timeout=300)
        deltas, error = await failure(provider, ask(), streaming=streaming)
    assert (error.code, error.retriable) == ("PROVIDER_TIMEOUT", True)
    assert deltas == before


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused_is_retriable(http: HttpClient, streaming: bool) -> None:
    with refused_url() as url:
        _, error = await failure(adapter(http, url), ask(), streaming=streaming)
    assert (error.code, error.retriable) == ("PROVIDER_ERROR", True)
    assert "connection refused" in error.message


async def test_ping_lists_tags(http: HttpClient) -> None:
    async with fake_ollama() as up:
        await adapter(http, up.url).ping()
        request = up.last
    assert (request.method, request.path) == ("GET", "/api/tags")


@pytest.mark.parametrize(
    ("mode", "code"), [("error500", "PROVIDER_ERROR"), ("hang", "PROVIDER_TIMEOUT")]
)
async def test_ping_failure_is_classified(http: HttpClient, mode: Mode, code: str) -> None:
    async with fake_ollama(mode=mode) as up:
        with pytest.raises(ModelReinsError) as caught:
            await adapter(http, up.url, timeout=300).ping()
    assert caught.value.code == code


async def test_ping_of_a_daemon_that_is_not_running_fails(http: HttpClient) -> None:
    with refused_url() as url, pytest.raises(ModelReinsError) as caught:
        await adapter(http, url).ping()
    assert (caught.value.code, caught.value.retriable) == ("PROVIDER_ERROR", True)


async def test_finished_streams_leave_the_connection_reusable(http: HttpClient) -> None:
    async with fake_ollama() as up:
        provider = adapter(http, up.url)
        await drain(provider, ask())
        await drain(provider, ask())
    assert len({r.client_port for r in up.requests}) == 1


async def test_queued_modes_apply_to_the_next_requests_only(http: HttpClient) -> None:
    async with fake_ollama(queue=["rate_limit", "error500"], reply="ok") as up:
        provider = adapter(http, up.url)
        first = await failure(provider, ask(), streaming=False)
        second = await failure(provider, ask(), streaming=True)
        done = await provider.complete(ask())
    assert [first[1].code, second[1].code] == ["RATE_LIMITED", "PROVIDER_ERROR"]
    assert done.text == "ok"
