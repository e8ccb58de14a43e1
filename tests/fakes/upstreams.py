"""Fake Anthropic, OpenAI-compatible and Ollama upstreams: real HTTP on loopback, switchable.

One :class:`FakeUpstream` per server holds the knobs (``mode``, ``queue``, ``reply``,
``retry_after``, ``record``) and records every request (method, path, headers, JSON body, query,
client port). Each API gets a small Starlette app speaking its real wire format::

    async with fake_openai() as up:          # also fake_anthropic(), fake_ollama()
        cfg = {"type": "openai-compat", "baseUrl": up.url, "model": "m"}
        ...                                  # success: the reply echoes the last message
        up.mode = "stall"                    # switch behaviour at any time
        up.queue = ["rate_limit", "error500"]  # the next two requests, then `mode` again
        assert up.last.json["stream"] is True  # up.requests: every request, in order

For sync code (subprocess clients): ``with fake_upstream_in_thread("ollama") as up: ...``.

Modes (``FakeUpstream.mode``):

============== ========================================================================
success        answers, streamed or not as the request asks, with ``reply`` (default: the
               last message's text) and usage (input: words in all messages, output: words
               in the reply); a stream sends one delta per word
rate_limit     429 with ``Retry-After: <retry_after>`` (default ``7``)
error500       500 with an API-shaped error body
unauthorized   401 whose body echoes the key it was sent (as some real APIs partly do)
hang           accepts the request and never answers (released at teardown)
stall          stream: first delta, then silence; non-stream: like ``hang``
malformed      200 whose body is not JSON; stream: first delta, then a broken line
midstream_error  stream: first delta, then the API's in-band error; non-stream: 200 with
               the in-band error body
drop           first bytes of the answer, then the connection is cut
truncated      stream: first delta, then a clean end without the API's final event;
               non-stream: like ``malformed``
============== ========================================================================

``GET`` model listings (what ``ping`` uses) honour rate_limit, error500, unauthorized and hang,
and succeed in every other mode.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.loopback import serve, serve_in_thread

__all__ = [
    "MODES",
    "Api",
    "FakeUpstream",
    "Mode",
    "RecordedRequest",
    "fake_anthropic",
    "fake_ollama",
    "fake_openai",
    "fake_upstream",
    "fake_upstream_in_thread",
]

Api = Literal["anthropic", "openai", "ollama"]
Mode = Literal[
    "success",
    "rate_limit",
    "error500",
    "unauthorized",
    "hang",
    "stall",
    "malformed",
    "midstream_error",
    "drop",
    "truncated",
]
MODES: tuple[Mode, ...] = (
    "success",
    "rate_limit",
    "error500",
    "unauthorized",
    "hang",
    "stall",
    "malformed",
    "midstream_error",
    "drop",
    "truncated",
)
BROKEN = b'{"this is": not json\n'
"""The bytes ``malformed`` sends where JSON should be."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: dict[str, str]
    client_port: int | None
    """The client's source port: equal ports mean a reused (keep-alive) connection."""


class Dropped(Exception):
    """Raised inside a response body so uvicorn cuts the connection mid-answer."""


@dataclass
class FakeUpstream:
    """The control object shared by a fake server and the test that drives it."""

    api: Api
    mode: Mode = "success"
    reply: str | None = None
    retry_after: str = "7"
    record: bool = True
    queue: list[Mode] = field(default_factory=list)
    """Modes for the next requests, one each, before ``mode`` applies again (e.g. a 429 then
    success, for retry tests)."""
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""
    """What to put in a provider's ``baseUrl`` (``…/v1`` for the OpenAI flavour)."""
    root: str = ""
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(
        default_factory=list, init=False, repr=False
    )
    _released: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def app(self) -> Starlette:
        return _APPS[self.api](self)

    async def hold(self) -> None:
        """Park the current request until :meth:`release` (teardown)."""
        # asyncio, not anyio: release() may come from another thread and loop.
        event = asyncio.Event()
        with self._lock:
            if self._released:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()

    def release(self) -> None:
        """Let every parked request finish; later ones no longer park."""
        with self._lock:
            self._released = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def receive(self, request: Request) -> tuple[Any, Mode]:
        """Parse and (unless ``record`` is off) record the request: its JSON body and mode."""
        with self._lock:
            mode = self.queue.pop(0) if self.queue else self.mode
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if self.record:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    dict(request.headers),
                    body,
                    dict(request.query_params),
                    request.client.port if request.client else None,
                )
            )
        return body, mode

    def answer(self, body: Any) -> tuple[str, str, int, int]:
        """(model, reply, input_tokens, output_tokens) for a request body."""
        body = body if isinstance(body, dict) else {}
        texts = [_text(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
        echo = texts[-1] if texts else ""
        reply = self.reply if self.reply is not None else echo
        words = sum(len(t.split()) for t in [*texts, _text(body.get("system"))])
        return str(body.get("model") or "fake-model"), reply, words, len(reply.split())


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def chunks(text: str) -> list[str]:
    """``text`` as word-sized deltas that join back to exactly ``text``."""
    return [piece for piece in re.findall(r"\S*\s*", text) if piece]


ErrorBody = Callable[[str, str], Any]


async def _common_failure(
    up: FakeUpstream, mode: Mode, error_body: ErrorBody, auth: str
) -> Response | None:
    """The answer for modes that fail before any body is produced; None otherwise."""
    if mode == "rate_limit":
        return JSONResponse(
            error_body("rate_limit_error", "slow down"),
            429,
            headers={"retry-after": up.retry_after},
        )
    if mode == "error500":
        return JSONResponse(error_body("api_error", "internal failure"), 500)
    if mode == "unauthorized":
        return JSONResponse(error_body("authentication_error", f"invalid key: {auth}"), 401)
    if mode == "hang":
        await up.hold()
        return Response(status_code=503)
    return None


async def _nonstream_failure(up: FakeUpstream, mode: Mode, inband: Any) -> Response | None:
    if mode == "stall":
        await up.hold()
        return Response(status_code=503)
    if mode in ("malformed", "truncated"):
        return Response(BROKEN, 200, media_type="application/json")
    if mode == "midstream_error":
        return JSONResponse(inband, 200)
    if mode == "drop":
        return StreamingResponse(_drop_after(b'{"partial": '), media_type="application/json")
    return None


async def _drop_after(first: bytes) -> AsyncIterator[bytes]:
    yield first
    raise Dropped("the fake cuts the connection here")


async def _faulty_stream(
    up: FakeUpstream, mode: Mode, head: list[bytes], first: bytes, inband: bytes, *, sse: bool
) -> AsyncIterator[bytes]:
    """The stream of a failing mode: the API's opening, one delta, then the fault."""
    for part in head:
        yield part
    yield first
    if mode == "stall":
        await up.hold()
    elif mode == "malformed":
        yield b"data: " + BROKEN + b"\n" if sse else BROKEN
    elif mode == "midstream_error":
        yield inband
    elif mode == "drop":
        raise Dropped("the fake cuts the connection here")


def _sse(event: str | None, data: Any) -> bytes:
    name = f"event: {event}\n" if event else ""
    return f"{name}data: {json.dumps(data)}\n\n".encode()


def anthropic_app(up: FakeUpstream) -> Starlette:
    """``POST /v1/messages`` and ``GET /v1/models`` in the Anthropic Messages API format."""

    def error_body(kind: str, message: str) -> Any:
        return {"type": "error", "error": {"type": kind, "message": message}}

    async def messages(request: Request) -> Response:
        body, mode = await up.receive(request)
        failed = await _common_failure(up, mode, error_body, request.headers.get("x-api-key", ""))
        if failed is not None:
            return failed
        model, reply, n_in, n_out = up.answer(body)
        stream = isinstance(body, dict) and body.get("stream") is True
        if not stream:
            failed = await _nonstream_failure(up, mode, error_body("api_error", "in-band failure"))
            return failed or JSONResponse(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": reply}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": n_in, "output_tokens": n_out},
                }
            )
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": n_in, "output_tokens": 1},
            },
        }
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
        head = [_sse("message_start", start), _sse("content_block_start", block)]

        def delta(text: str) -> bytes:
            event = {"type": "text_delta", "text": text}
            return _sse(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": event}
            )

        if mode != "success":
            error = _sse("error", error_body("overloaded_error", "Overloaded"))
            parts = _faulty_stream(up, mode, head, delta("partial "), error, sse=True)
            return StreamingResponse(parts, media_type="text/event-stream")
        tail = [
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": n_out},
                },
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
        payload = b"".join([*head, _sse("ping", {"type": "ping"})])
        payload += b"".join(delta(piece) for piece in chunks(reply)) + b"".join(tail)
        return Response(payload, media_type="text/event-stream")

    async def models(request: Request) -> Response:
        _, mode = await up.receive(request)
        failed = await _common_failure(up, mode, error_body, request.headers.get("x-api-key", ""))
        return failed or JSONResponse(
            {"data": [{"type": "model", "id": "claude-fake"}], "has_more": False}
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def openai_app(up: FakeUpstream) -> Starlette:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` in OpenAI's format."""

    def error_body(kind: str, message: str) -> Any:
        return {"error": {"message": message, "type": kind, "code": None}}

    def key_of(request: Request) -> str:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        return bearer or request.headers.get("api-key", "")

    async def completions(request: Request) -> Response:
        body, mode = await up.receive(request)
        failed = await _common_failure(up, mode, error_body, key_of(request))
        if failed is not None:
            return failed
        model, reply, n_in, n_out = up.answer(body)
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        body = body if isinstance(body, dict) else {}
        if body.get("stream") is not True:
            failed = await _nonstream_failure(
                up, mode, error_body("server_error", "in-band failure")
            )
            return failed or JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return _sse(
                None, {"object": "chat.completion.chunk", "model": model, "choices": [choice]}
            )

        head = [chunk({"role": "assistant", "content": ""})]
        if mode != "success":
            error = _sse(None, error_body("server_error", "in-band failure"))
            parts = _faulty_stream(up, mode, head, chunk({"content": "partial "}), error, sse=True)
            return StreamingResponse(parts, media_type="text/event-stream")
        payload = b"".join([*head, *(chunk({"content": piece}) for piece in chunks(reply))])
        payload += chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            payload += _sse(
                None,
                {"object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage},
            )
        return Response(payload + b"data: [DONE]\n\n", media_type="text/event-stream")

    async def models(request: Request) -> Response:
        _, mode = await up.receive(request)
        failed = await _common_failure(up, mode, error_body, key_of(request))
        return failed or JSONResponse(
            {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def ollama_app(up: FakeUpstream) -> Starlette:
    """``POST /api/chat`` and ``GET /api/tags`` in Ollama's native format (NDJSON streams)."""

    def error_body(kind: str, message: str) -> Any:
        return {"error": message}

    def line(data: Any) -> bytes:
        return json.dumps(data).encode() + b"\n"

    async def chat(request: Request) -> Response:
        body, mode = await up.receive(request)
        failed = await _common_failure(
            up, mode, error_body, request.headers.get("authorization", "")
        )
        if failed is not None:
            return failed
        model, reply, n_in, n_out = up.answer(body)
        body = body if isinstance(body, dict) else {}
        final = {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": n_in,
            "eval_count": n_out,
        }

        def piece(text: str) -> dict[str, Any]:
            return {
                "model": model,
                "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": text},
                "done": False,
            }

        # Ollama streams unless told otherwise.
        if body.get("stream", True) is not True:
            failed = await _nonstream_failure(up, mode, error_body("", "in-band failure"))
            return failed or JSONResponse(
                {**final, "message": {"role": "assistant", "content": reply}}
            )
        if mode != "success":
            error = line(error_body("", "in-band failure"))
            parts = _faulty_stream(up, mode, [], line(piece("partial ")), error, sse=False)
            return StreamingResponse(parts, media_type="application/x-ndjson")
        payload = b"".join(line(piece(p)) for p in chunks(reply))
        payload += line({**final, "message": {"role": "assistant", "content": ""}})
        return Response(payload, media_type="application/x-ndjson")

    async def tags(request: Request) -> Response:
        _, mode = await up.receive(request)
        failed = await _common_failure(
            up, mode, error_body, request.headers.get("authorization", "")
        )
        return failed or JSONResponse({"models": [{"name": "fake-model:latest"}]})

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
        ]
    )


_APPS: dict[Api, Callable[[FakeUpstream], Starlette]] = {
    "anthropic": anthropic_app,
    "openai": openai_app,
    "ollama": ollama_app,
}
_URL_SUFFIX: dict[Api, str] = {"anthropic": "", "openai": "/v1", "ollama": ""}


@asynccontextmanager
async def fake_upstream(api: Api, **knobs: Any) -> AsyncIterator[FakeUpstream]:
    """Serve a fake ``api`` upstream in the current event loop."""
    up = FakeUpstream(api, **knobs)
    async with serve(up.app()) as root:
        up.root, up.url = root, root + _URL_SUFFIX[api]
        try:
            yield up
        finally:
            up.release()


@contextmanager
def fake_upstream_in_thread(api: Api, **knobs: Any) -> Iterator[FakeUpstream]:
    """Serve a fake ``api`` upstream on its own thread (for sync tests and subprocesses)."""
    up = FakeUpstream(api, **knobs)
    with serve_in_thread(up.app()) as root:
        up.root, up.url = root, root + _URL_SUFFIX[api]
        try:
            yield up
        finally:
            up.release()


def fake_anthropic(**knobs: Any) -> AbstractAsyncContextManager[FakeUpstream]:
    """``async with fake_anthropic() as up``: a fake Anthropic Messages API."""
    return fake_upstream("anthropic", **knobs)


def fake_openai(**knobs: Any) -> AbstractAsyncContextManager[FakeUpstream]:
    """``async with fake_openai() as up``: a fake OpenAI-compatible server (``up.url`` ends /v1)."""
    return fake_upstream("openai", **knobs)


def fake_ollama(**knobs: Any) -> AbstractAsyncContextManager[FakeUpstream]:
    """``async with fake_ollama() as up``: a fake Ollama server."""
    return fake_upstream("ollama", **knobs)
