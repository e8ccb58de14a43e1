"""Reading SSE: the parser's rules, and a dispatch stream's odd cases from a crafted server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from core.errors import Unavailable
from core.models import DispatchRecord, DispatchRequest
from core.providers import TextDelta
from core.remote import RemoteEngine
from core.sse import SseEvent, SseParser, sse_events
from tests.support.loopback import serve

RECORD = ('{"id": "dsp_1", "status": "success", "prompt": "p", "text": "hi", '
          '"createdAt": "2026-01-01T00:00:00Z"}')


@pytest.mark.parametrize(("lines", "events"), [
    (["data: x", ""], [SseEvent("message", "x")]),
    (["event: delta", "data: {}", ""], [SseEvent("delta", "{}")]),
    (["data: one", "data: two", ""], [SseEvent("message", "one\ntwo")]),
    (["data:no-space", ""], [SseEvent("message", "no-space")]),
    (["data:  two spaces", ""], [SseEvent("message", " two spaces")]),
    ([": ping", "", "data: x", ""], [SseEvent("message", "x")]),
    (["event: lonely", ""], []),
    (["id: 7", "data: x", "", "data: y", ""], [SseEvent("message", "x", "7"),
                                              SseEvent("message", "y", "7")]),
    (["retry: 100", "data: x", ""], [SseEvent("message", "x")]),
    (["event: a", "data: 1", "", "data: 2", ""], [SseEvent("a", "1"), SseEvent("message", "2")]),
])
def test_parser(lines: list[str], events: list[SseEvent]) -> None:
    parser = SseParser()
    fed = [parser.feed(line) for line in lines]
    assert [e for e in fed if e is not None] == events


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_crlf_lines_and_a_cut_off_event() -> None:
    got = [e async for e in sse_events(_lines("data: x\r", "\r", "data: cut"))]
    assert got == [SseEvent("message", "x")]


def _streaming(*chunks: str) -> Starlette:
    async def body() -> AsyncIterator[str]:
        for chunk in chunks:
            yield chunk

    async def dispatch(_: Request) -> StreamingResponse:
        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/api/dispatch", dispatch, methods=["POST"])])


async def test_unknown_events_and_comments_are_skipped() -> None:
    app = _streaming(": keep-alive\n\n", "event: progress\ndata: {}\n\n",
                     'event: delta\ndata: {"text": "hi"}\n\n',
                     f"event: dispatch\ndata: {RECORD}\n\n")
    async with serve(app) as url, RemoteEngine.open(url, "mr_x") as remote:
        events = [e async for e in remote.dispatch_stream(DispatchRequest(prompt="p"))]
    assert events[0] == TextDelta("hi")
    assert isinstance(events[1], DispatchRecord) and events[1].text == "hi"


@pytest.mark.parametrize(("chunks", "problem"), [
    (['event: delta\ndata: {"text": "hi"}\n\n'], "ended without a final record"),
    (["event: delta\ndata: not json\n\n"], "malformed 'delta' event"),
    (['event: dispatch\ndata: {"id": 1}\n\n'], "unexpected DispatchRecord"),
])
async def test_a_broken_stream_is_unavailable(chunks: list[str], problem: str) -> None:
    async with serve(_streaming(*chunks)) as url, RemoteEngine.open(url, "mr_x") as remote:
        with pytest.raises(Unavailable, match=problem):
            async for _ in remote.dispatch_stream(DispatchRequest(prompt="p")):
                pass
