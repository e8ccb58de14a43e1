"""Dispatch with fallback across real HTTP fakes of each upstream API (not scripted providers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import parse_settings
from core.dispatch import Fallback
from core.engine import Engine, open_memory_store
from core.errors import ProviderError, ProviderTimeout
from core.models import DispatchRecord, DispatchRequest
from core.providers import TextDelta
from tests.fakes import FakeUpstream, fake_anthropic, fake_ollama, fake_openai


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream, FakeUpstream]]:
    async with fake_anthropic() as claude, fake_openai() as oneminai, fake_ollama() as ollama:
        yield claude, oneminai, ollama


@pytest.fixture
async def engine(
    upstreams: tuple[FakeUpstream, FakeUpstream, FakeUpstream], tmp_path: Path
) -> AsyncIterator[Engine]:
    claude, oneminai, ollama = upstreams
    settings = parse_settings({"providers": {
        "claude": {"type": "anthropic", "baseUrl": claude.url, "apiKey": "sk-ant-test-key",
                   "model": "claude-sonnet-4-6", "default": True, "timeout": 2000},
        "1minai": {"type": "openai-compat", "baseUrl": oneminai.url, "apiKey": "one-min-key",
                   "authHeader": "API-KEY", "model": "gpt-4o", "fallback": True,
                   "timeout": 2000},
        "ollama": {"type": "ollama", "baseUrl": ollama.url, "model": "llama3.2",
                   "fallback": True, "timeout": 2000},
    }}, env={})
    async with Engine.open(tmp_path, settings=settings, store=open_memory_store()) as eng:
        yield eng


async def test_rate_limited_default_falls_back_over_http(
    engine: Engine, upstreams: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    claude, oneminai, _ = upstreams
    claude.mode = "rate_limit"
    record = await engine.dispatch(DispatchRequest(prompt="hello over the wire"))
    assert (record.provider, record.text) == ("1minai", "hello over the wire")
    assert [(a.provider, a.code) for a in record.attempts] == [
        ("claude", "RATE_LIMITED"), ("1minai", None)]
    assert oneminai.last.headers["api-key"] == "one-min-key"
    assert "authorization" not in oneminai.last.headers


async def test_whole_chain_down_reports_the_last_failure(
    engine: Engine, upstreams: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    for upstream in upstreams:
        upstream.mode = "error500"
    with pytest.raises(ProviderError) as info:
        await engine.dispatch(DispatchRequest(prompt="x"))
    assert info.value.provider == "ollama"
    [failed] = (await engine.history(status="error")).items
    assert [a.code for a in failed.attempts] == ["PROVIDER_ERROR"] * 3


async def test_upstream_401_is_not_retried_and_never_echoes_the_key(
    engine: Engine, upstreams: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    claude, oneminai, _ = upstreams
    claude.mode = "unauthorized"
    with pytest.raises(ProviderError) as info:
        await engine.dispatch(DispatchRequest(prompt="x"))
    assert "sk-ant-test-key" not in str(info.value)
    assert "credentials" in info.value.message
    assert oneminai.requests == []


async def test_stream_falls_back_before_first_byte_over_http(
    engine: Engine, upstreams: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    claude, _, _ = upstreams
    claude.mode = "error500"
    events = [e async for e in engine.dispatch_stream(DispatchRequest(prompt="one two three"))]
    assert events[0] == Fallback("claude", "1minai", "PROVIDER_ERROR")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    final = events[-1]
    assert isinstance(final, DispatchRecord)
    assert (final.provider, final.text) == ("1minai", "one two three")


async def test_stream_stalling_after_first_byte_errors_without_fallback(
    engine: Engine, upstreams: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    claude, oneminai, _ = upstreams
    claude.mode = "stall"
    seen: list[object] = []
    with pytest.raises(ProviderTimeout):
        async for event in engine.dispatch_stream(DispatchRequest(prompt="a b c")):
            seen.append(event)
    assert len(seen) == 1
    assert isinstance(seen[0], TextDelta)
    assert oneminai.requests == []
