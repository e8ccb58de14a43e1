"""Reading a ``text/event-stream``: lines in, events out (the WHATWG rules that matter here).

``event:`` names the event (``message`` when absent), ``data:`` lines are joined with
newlines, ``id:`` and ``retry:`` are kept or ignored, lines starting with ``:`` are comments
(keep-alive pings), and a blank line ends an event. An event without data is dropped, and
so is one cut off by the end of the stream before its blank line.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

__all__ = ["SseEvent", "SseParser", "sse_events"]


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None


@dataclass
class SseParser:
    """Feed it lines (without their line break); it returns an event at each blank line."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event=event or "message", data="\n".join(data), id=self._id)


async def sse_events(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """The events of a stream of lines (``httpx2.Response.aiter_lines()``)."""
    parser = SseParser()
    async for line in lines:
        event = parser.feed(line.rstrip("\r"))
        if event is not None:
            yield event
