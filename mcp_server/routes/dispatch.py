"""``POST /api/dispatch``, ``GET /api/dispatches``, ``GET /api/dispatches/{id}``.

With ``"stream": true`` the answer is Server-Sent Events:

* ``delta`` — ``{"text": "…"}``, the next piece of the answer;
* ``fallback`` — ``{"fromProvider", "toProvider", "code"}``: a provider failed before its
  first delta and the next in the chain is tried;
* ``dispatch`` — the full dispatch record, once, last, on success;
* ``error`` — the §5 body ``{"error": {…}}``, once, last, when the dispatch fails after the
  stream started (a provider failing mid-answer, or timing out).

A failure before any event exists — invalid request, unknown or forbidden provider, every
provider failing before its first byte — is an ordinary JSON error response with its
status (e.g. 429 with ``Retry-After``): no stream is opened for it.

Without a stream, ``?waitS=N`` bounds the wait: a dispatch still under way after N seconds
answers 202 with its record ``running`` and goes on in the background, landing in history
under that id (poll ``GET /api/dispatches/{id}``). Remote clients (``core.remote``) rely
on it to keep a tool call within what MCP clients tolerate.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Literal

import anyio
from pydantic import Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from core.dispatch import DispatchEvent, Fallback
from core.errors import ModelReinsError, field_error
from core.models import DispatchRecord, DispatchRequest, Page, WireModel
from core.principal import Principal
from core.providers import TextDelta
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.errors import ErrorBody
from mcp_server.rest.paging import Paging, QueryModel

__all__ = [
    "ENDPOINTS",
    "MAX_WAIT_S",
    "DispatchQuery",
    "HistoryQuery",
    "StreamDelta",
    "StreamFallback",
    "contribute",
]

log = logging.getLogger("modelreins.api")

MAX_WAIT_S = 3600.0


class DispatchQuery(QueryModel):
    wait_s: float | None = Field(
        default=None, ge=0, le=MAX_WAIT_S,
        description="Seconds to wait for the answer (not with `stream`); past it the answer "
                    "is 202 with the record `running`, and the dispatch goes on.")


class HistoryQuery(Paging):
    provider: str | None = Field(default=None, min_length=1,
                                 description="Only dispatches served by this provider.")
    status: Literal["success", "error"] | None = Field(
        default=None, description="Only dispatches that ended this way.")


class StreamDelta(WireModel):
    """Data of a ``delta`` event."""

    text: str


class StreamFallback(WireModel):
    """Data of a ``fallback`` event."""

    from_provider: str
    to_provider: str
    code: str = Field(description="Why the first provider failed.")


def _event(event: DispatchEvent) -> ServerSentEvent:
    if isinstance(event, TextDelta):
        return ServerSentEvent(StreamDelta(text=event.text).model_dump_json(), event="delta")
    if isinstance(event, Fallback):
        data = StreamFallback(from_provider=event.from_provider, to_provider=event.to_provider,
                              code=event.code)
        return ServerSentEvent(data.model_dump_json(by_alias=True), event="fallback")
    return ServerSentEvent(event.model_dump_json(by_alias=True), event="dispatch")


def _error_event(exc: ModelReinsError) -> ServerSentEvent:
    return ServerSentEvent(ErrorBody.model_validate({"error": exc.to_dict()}).model_dump_json(
        by_alias=True, exclude_none=True), event="error")


async def _events(first: DispatchEvent, rest: AsyncGenerator[DispatchEvent, None]
                  ) -> AsyncIterator[ServerSentEvent]:
    async with aclosing(rest):
        yield _event(first)
        try:
            async for event in rest:
                yield _event(event)
        except ModelReinsError as exc:
            yield _error_event(exc)
        except Exception:
            log.exception("dispatch stream failed unexpectedly")
            yield _error_event(ModelReinsError(
                "internal error: the stream failed unexpectedly; the server log has the details"))


async def _stream(call: ApiCall, req: DispatchRequest, principal: Principal) -> Response:
    events = call.engine.dispatch_stream(req, principal=principal)
    try:
        first = await anext(events)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await events.aclose()
        raise
    return EventSourceResponse(_events(first, events), sep="\n")


async def dispatch(call: ApiCall) -> DispatchRecord | Response:
    """Dispatch a prompt

    Sends the prompt to the named provider (else the default), falling back on retriable
    failures, and answers with the dispatch record. With `"stream": true` the answer is an
    SSE stream: `delta` events (StreamDelta), `fallback` events (StreamFallback), then one
    `dispatch` event carrying the full record — or, if the dispatch fails after the stream
    started, one `error` event carrying the error body (ErrorBody). A failure before the
    stream starts is an ordinary error response. Without a stream, `waitS` bounds the
    wait: past it the answer is 202 with the record `running` (poll
    `GET /api/dispatches/{id}`)."""
    req = call.body_as(DispatchRequest)
    wait_s = call.query_as(DispatchQuery).wait_s
    if req.stream:
        if wait_s is not None:
            raise field_error("waitS", "does not apply to a stream")
        return await _stream(call, req, call.principal)
    record = await call.engine.dispatch(req, wait_s=wait_s, principal=call.principal)
    if record.status == "running":
        return Response(record.model_dump_json(by_alias=True), status_code=202,
                        media_type="application/json")
    return record


async def history(call: ApiCall) -> Page[DispatchRecord]:
    """Dispatch history, newest first

    A token restricted to some providers sees only the dispatches they served."""
    q = call.query_as(HistoryQuery)
    return await call.engine.history(limit=q.limit, offset=q.offset, provider=q.provider,
                                     status=q.status, principal=call.principal)


async def get_dispatch(call: ApiCall) -> DispatchRecord:
    """One dispatch, by id (``running`` while it is under way)"""
    return await call.engine.get_dispatch(call.path("id"), principal=call.principal)


ENDPOINTS = [
    Endpoint("POST", "/api/dispatch", dispatch, "dispatch", DispatchRecord,
             body=DispatchRequest, query=DispatchQuery, errors=(404, 429, 502, 503, 504),
             more_statuses=(202,),
             events=(("delta", StreamDelta), ("fallback", StreamFallback),
                     ("dispatch", DispatchRecord), ("error", ErrorBody)),
             tag="dispatch"),
    Endpoint("GET", "/api/dispatches", history, "dispatch", Page[DispatchRecord],
             query=HistoryQuery, tag="dispatch"),
    Endpoint("GET", "/api/dispatches/{id}", get_dispatch, "dispatch", DispatchRecord,
             tag="dispatch"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
