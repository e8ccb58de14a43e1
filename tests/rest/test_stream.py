"""``POST /api/dispatch`` with ``"stream": true``: SSE over real HTTP, against a fake
OpenAI-compatible upstream on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from core.config import parse_settings
from core.engine import Engine, open_memory_store
from core.errors import ProviderError
from tests.fakes import FakeUpstream, fake_openai
from tests.rest.conftest import Api, error_of, running_api
from tests.support.scripted import ScriptedProvider, Step

TIMEOUT_MS = 300
Event = tuple[str, Any]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with fake_openai(reply="The quick brown fox") as up:
        yield up


@pytest.fixture
async def live(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Api]:
    settings = parse_settings({"providers": {
        "up": {"type": "openai-compat", "baseUrl": upstream.url, "apiKey": "k", "model": "m",
               "default": True, "timeout": TIMEOUT_MS},
    }}, env={})
    async with Engine.open(tmp_path, settings=settings, store=open_memory_store()) as engine, \
            running_api(engine) as api:
        yield api


async def read_events(response: httpx2.Response) -> list[Event]:
    """Every SSE event of the response, data parsed as JSON, until the stream ends."""
    events: list[Event] = []
    name, data = "message", []
    with anyio.fail_after(10):
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif not line and data:
                events.append((name, json.loads("\n".join(data))))
                name, data = "message", []
    return events


async def stream(api: Api, body: dict[str, Any]) -> tuple[httpx2.Response, list[Event]]:
    async with api.client() as client, \
            client.stream("POST", "/api/dispatch", json={**body, "stream": True}) as response:
        if response.headers["content-type"].startswith("text/event-stream"):
            return response, await read_events(response)
        await response.aread()
        return response, []


async def test_stream_sends_deltas_then_one_final_record(live: Api) -> None:
    response, events = await stream(live, {"prompt": "say it"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    names = [name for name, _ in events]
    assert names == ["delta"] * (len(events) - 1) + ["dispatch"]
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert text == "The quick brown fox" and len(names) > 2
    record = events[-1][1]
    assert record["status"] == "success" and record["text"] == text
    assert record["provider"] == "up" and record["usage"]["output_tokens"] == 4
    history = await live.engine.get_dispatch(record["id"])
    assert history.text == text


async def test_stalled_upstream_ends_the_stream_with_a_timeout_error_event(
    live: Api, upstream: FakeUpstream,
) -> None:
    upstream.mode = "stall"
    response, events = await stream(live, {"prompt": "x"})
    assert response.status_code == 200
    assert [name for name, _ in events] == ["delta", "error"]
    error = events[-1][1]["error"]
    assert error["code"] == "PROVIDER_TIMEOUT" and error["provider"] == "up"
    failed = (await live.engine.history(status="error")).items
    assert failed[0].text == "partial " and failed[0].error is not None


async def test_midstream_failure_ends_the_stream_with_an_error_event(
    live: Api, upstream: FakeUpstream,
) -> None:
    upstream.mode = "midstream_error"
    _, events = await stream(live, {"prompt": "x"})
    assert [name for name, _ in events] == ["delta", "error"]
    assert events[-1][1]["error"]["code"] == "PROVIDER_ERROR"
    assert set(events[-1][1]) == {"error"}


async def test_failure_before_the_stream_starts_is_a_plain_error_response(
    live: Api, upstream: FakeUpstream,
) -> None:
    upstream.mode = "rate_limit"
    response, events = await stream(live, {"prompt": "x"})
    assert events == []
    error_of(response, 429, "RATE_LIMITED")
    assert response.headers["retry-after"] == "7"


async def test_invalid_stream_request_is_a_plain_validation_error(live: Api) -> None:
    response, _ = await stream(live, {"prompt": "x", "provider": "nope"})
    error_of(response, 404, "NOT_FOUND")


async def test_fallback_before_the_first_delta_is_announced(
    api: Api, scripted: dict[str, ScriptedProvider],
) -> None:
    scripted["main"].steps.append(Step(deltas=[], error=ProviderError("down")))
    scripted["backup"].steps.append(Step(deltas=["fine"]))
    _, events = await stream(api, {"prompt": "x"})
    assert events[0] == ("fallback", {"fromProvider": "main", "toProvider": "backup",
                                      "code": "PROVIDER_ERROR"})
    assert [name for name, _ in events[1:]] == ["delta", "dispatch"]
    assert events[-1][1]["provider"] == "backup"
