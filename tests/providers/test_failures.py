"""Pure pieces of core.providers.failures and .http: classification, Retry-After, scrubbing,
resolution."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx2
import pytest

from core.errors import ModelReinsError, ProviderError, ProviderTimeout, RateLimited
from core.providers.base import ProviderConfig
from core.providers.failures import (
    classify,
    map_transport_errors,
    parse_retry_after,
    scrub,
    upstream_message,
)
from core.providers.http import resolve
from tests.providers.helpers import KEY, ask, assert_no_secret

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
OPENAI_ERROR = json.dumps({"error": {"message": "model not found", "type": "invalid_request"}})


@pytest.mark.parametrize(
    ("status", "headers", "body", "code", "retriable", "retry_after"),
    [
        (429, {"Retry-After": "7"}, "", "RATE_LIMITED", True, 7.0),
        (429, {"retry-after": "0.5"}, "", "RATE_LIMITED", True, 0.5),
        (429, {"Retry-After": "Sun, 01 Mar 2026 12:00:30 GMT"}, "", "RATE_LIMITED", True, 30.0),
        (429, {"Retry-After": "Sun, 01 Mar 2026 11:00:00 GMT"}, "", "RATE_LIMITED", True, 0.0),
        (429, {"retry-after-ms": "1500", "retry-after": "9"}, "", "RATE_LIMITED", True, 1.5),
        (429, {"Retry-After": "soon"}, "", "RATE_LIMITED", True, None),
        (429, {}, "", "RATE_LIMITED", True, None),
        (401, {}, "", "PROVIDER_ERROR", False, None),
        (403, {}, "", "PROVIDER_ERROR", False, None),
        (400, {}, OPENAI_ERROR, "PROVIDER_ERROR", False, None),
        (404, {}, '{"error": "model \'x\' not found"}', "PROVIDER_ERROR", False, None),
        (413, {}, "too big", "PROVIDER_ERROR", False, None),
        (408, {}, "", "PROVIDER_TIMEOUT", True, None),
        (500, {}, "", "PROVIDER_ERROR", True, None),
        (502, {}, "<html>bad gateway</html>", "PROVIDER_ERROR", True, None),
        (503, {"Retry-After": "20"}, "", "PROVIDER_ERROR", True, 20.0),
        (
            529,
            {},
            '{"type":"error","error":{"type":"overloaded_error"}}',
            "PROVIDER_ERROR",
            True,
            None,
        ),
        (302, {}, "", "PROVIDER_ERROR", False, None),
    ],
)
def test_classify_maps_status_to_code_retriable_and_retry_after(
    status: int,
    headers: dict[str, str],
    body: str,
    code: str,
    retriable: bool,
    retry_after: float | None,
) -> None:
    error = classify("up", status, headers, body, now=NOW)
    assert (error.code, error.retriable, error.retry_after) == (code, retriable, retry_after)
    assert error.provider == "up"
    assert f"HTTP {status}" in error.message


def test_classify_rate_limit_is_rate_limited_with_wire_field() -> None:
    error = classify("claude", 429, {"Retry-After": "7"}, "", now=NOW)
    assert isinstance(error, RateLimited)
    assert error.to_dict()["retryAfter"] == 7.0
    assert "retry after 7s" in error.message


@pytest.mark.parametrize("status", [401, 403])
def test_classify_credentials_rejection_says_so_and_quotes_nothing(status: int) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}})
    error = classify("up", status, {}, body, now=NOW, secrets=[KEY])
    assert "rejected the credentials" in error.message
    assert "Incorrect" not in error.message
    assert_no_secret(error)


def test_classify_quotes_the_upstream_message_for_other_4xx() -> None:
    error = classify("up", 400, {}, OPENAI_ERROR, now=NOW)
    assert error.message == "upstream refused the request (HTTP 400): model not found"


def test_classify_scrubs_secrets_from_quoted_messages() -> None:
    body = json.dumps({"error": {"message": f"bad request with {KEY} inside"}})
    error = classify("up", 400, {}, body, now=NOW, secrets=[KEY])
    assert "***" in error.message
    assert_no_secret(error)


def test_classify_label_replaces_the_http_status_in_messages() -> None:
    error = classify("up", 529, {}, "", now=NOW, label="overloaded_error inside a 200 answer")
    assert "HTTP" not in error.message
    assert "overloaded_error inside a 200 answer" in error.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": {"message": "nope", "type": "x"}}', "nope"),
        (
            '{"type": "error", "error": {"type": "x", "message": "anthropic says"}}',
            "anthropic says",
        ),
        ('{"error": "ollama says"}', "ollama says"),
        ('{"message": "plain"}', "plain"),
        ('{"detail": "fastapi style"}', "fastapi style"),
        ('[{"error": {"message": "in a list"}}]', "in a list"),
        ("just text\nover lines", "just text over lines"),
        ("<!DOCTYPE html><html>…</html>", None),
        ("", None),
        ("{}", None),
        ("42", None),
        (b'{"error": "bytes too"}', "bytes too"),
    ],
)
def test_upstream_message_extracts_the_error_text(body: str | bytes, expected: str | None) -> None:
    assert upstream_message(body) == expected


def test_upstream_message_is_truncated() -> None:
    message = upstream_message(json.dumps({"error": "x" * 5000}))
    assert message is not None
    assert len(message) == 300
    assert message.endswith("…")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("1.25", 1.25),
        ("0", 0.0),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
        ("Sun, 01 Mar 2026 12:01:00 GMT", 60.0),
        ("Sunday, 01-Mar-26 12:00:10 GMT", 10.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),
        ("not a date", None),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key sk-1 here", ["sk-1"], "key *** here"),
        ("sk-1 and sk-1", ["sk-1"], "*** and ***"),
        ("nothing", ["sk-1"], "nothing"),
        ("empty secret ignored", [""], "empty secret ignored"),
        ("a b", ["a", "b"], "*** ***"),
        ("b'Bearer k\\r\\nx'", ["k\r\nx"], "b'Bearer ***'"),
    ],
)
def test_scrub_replaces_every_secret(text: str, secrets: list[str], expected: str) -> None:
    assert scrub(text, secrets) == expected


REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


@pytest.mark.parametrize(
    ("exc", "kind", "code", "retriable", "phrase"),
    [
        (
            httpx2.ConnectError("[Errno 111] refused"),
            ProviderError,
            "PROVIDER_ERROR",
            True,
            "connection refused",
        ),
        (httpx2.ConnectTimeout(""), ProviderTimeout, "PROVIDER_TIMEOUT", True, "could not connect"),
        (httpx2.ReadTimeout(""), ProviderTimeout, "PROVIDER_TIMEOUT", True, "stopped answering"),
        (httpx2.WriteTimeout(""), ProviderTimeout, "PROVIDER_TIMEOUT", True, "stopped answering"),
        (httpx2.PoolTimeout(""), ProviderTimeout, "PROVIDER_TIMEOUT", True, "no free connection"),
        (httpx2.ReadError("reset"), ProviderError, "PROVIDER_ERROR", True, "mid-response"),
        (
            httpx2.RemoteProtocolError("peer closed"),
            ProviderError,
            "PROVIDER_ERROR",
            True,
            "mid-response",
        ),
        (
            httpx2.DecodingError("bad gzip"),
            ProviderError,
            "PROVIDER_ERROR",
            True,
            "bad upstream payload",
        ),
        (httpx2.UnsupportedProtocol("ftp"), ProviderError, "PROVIDER_ERROR", False, "cannot send"),
    ],
)
def test_transport_errors_are_translated_once_with_the_cause_kept(
    exc: httpx2.HTTPError, kind: type[ModelReinsError], code: str, retriable: bool, phrase: str
) -> None:
    with pytest.raises(kind) as caught, map_transport_errors("up", "http://127.0.0.1:9/v1"):
        raise exc
    error = caught.value
    assert (error.code, error.retriable, error.provider) == (code, retriable, "up")
    assert phrase in error.message
    assert "127.0.0.1:9" in error.message
    assert "/v1" not in error.message
    assert error.__cause__ is exc


def test_transport_error_naming_a_secret_drops_the_chain() -> None:
    leaky = httpx2.LocalProtocolError(f"Illegal header value b'{KEY}\\n'")
    with pytest.raises(ProviderError) as caught, map_transport_errors("up", "http://h", [KEY]):
        raise leaky
    assert caught.value.retriable is False
    assert_no_secret(caught.value)


def test_own_errors_pass_through_scrubbed() -> None:
    with pytest.raises(ProviderError) as caught, map_transport_errors("up", "http://h", [KEY]):
        raise ProviderError(f"echoed {KEY}", provider="up")
    assert caught.value.message == "echoed ***"
    assert_no_secret(caught.value)


def test_transport_errors_never_show_userinfo_of_the_base_url() -> None:
    with (
        pytest.raises(ProviderError) as caught,
        map_transport_errors("up", "https://user:hunter22@example.test:8443/v1"),
    ):
        raise httpx2.ConnectError("")
    assert "example.test:8443" in caught.value.message
    assert "hunter22" not in caught.value.message


def _config(**keys: object) -> ProviderConfig:
    return ProviderConfig.model_validate({"type": "x", **keys})


def test_resolve_fills_gaps_from_config() -> None:
    config = _config(
        model="m1", systemPrompt="be brief", maxTokens=99, options={"temperature": 0.1, "a": 1}
    )
    r = resolve("p", config, ask())
    assert (r.model, r.system, r.max_tokens) == ("m1", "be brief", 99)
    assert r.options == {"temperature": 0.1, "a": 1}


def test_resolve_lets_the_call_win() -> None:
    config = _config(model="m1", systemPrompt="be brief", maxTokens=99, options={"t": 1, "a": 1})
    call = ask(model="m2", system="", max_tokens=5, options={"t": 2})
    r = resolve("p", config, call)
    assert (r.model, r.system, r.max_tokens) == ("m2", "", 5)
    assert r.options == {"t": 2, "a": 1}


def test_resolve_without_any_model_is_a_validation_error() -> None:
    with pytest.raises(ModelReinsError) as caught:
        resolve("local", _config(), ask())
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.details == [
        {"path": "model", "problem": "no model given and provider 'local' has no default model"}
    ]


def test_chat_messages_put_the_system_prompt_first() -> None:
    r = resolve("p", _config(model="m", systemPrompt="sys"), ask("hi"))
    assert r.chat_messages() == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]
