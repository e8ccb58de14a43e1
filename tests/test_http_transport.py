"""The engine's outbound transport (core.http_transport) against raw loopback servers.

Failure mapping is covered by the provider suite, which runs on this transport too
(tests/providers/conftest.py); here: keep-alive reuse, the idle-close check it replaces,
and requests held back to go out in one send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpcore2

from core.engine import new_http_client
from core.http_transport import _HOLD_MAX, _Stream

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@asynccontextmanager
async def one_shot_server(*, close_after: bool
                          ) -> AsyncIterator[tuple[str, list[int], asyncio.Event]]:
    """Answers each request on a keep-alive connection (no ``Connection: close``); with
    ``close_after`` it then closes the connection, as a server whose keep-alive timeout
    ran out would. Yields the URL, the number of connections accepted so far, and an event
    set once a connection has been closed."""
    accepted = [0]
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(ANSWER)
                await writer.drain()
                if close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/", accepted, closed


async def test_idle_connections_are_reused() -> None:
    async with one_shot_server(close_after=False) as (url, accepted, _), new_http_client() as http:
        for _ in range(3):
            assert (await http.get(url)).text == "ok"
    assert accepted[0] == 1


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async with one_shot_server(close_after=True) as (url, accepted, closed), \
            new_http_client() as http:
        assert (await http.get(url)).text == "ok"
        with anyio.fail_after(5):
            await closed.wait()
        # Sent on the closed connection, this would fail ("server disconnected").
        assert (await http.get(url)).text == "ok"
    assert accepted[0] == 2


class Recording(httpcore2.AsyncNetworkStream):
    """A network stream that records each send and answers reads from ``answer``."""

    def __init__(self, answer: bytes = b"", *, broken: bool = False) -> None:
        self.sends: list[bytes] = []
        self.answer = answer
        self.broken = broken

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self.broken:
            raise httpcore2.WriteError("connection reset by peer")
        self.sends.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        answer, self.answer = self.answer[:max_bytes], self.answer[max_bytes:]
        return answer

    async def aclose(self) -> None:
        pass


async def test_a_small_request_goes_out_in_one_send_before_the_answer_is_read() -> None:
    raw = Recording(ANSWER)
    stream = _Stream(raw)
    await stream.write(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n")
    await stream.write(b"{}")
    assert raw.sends == []
    assert await stream.read(1024) == ANSWER
    assert raw.sends == [b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}"]


async def test_a_large_body_is_not_held_back() -> None:
    raw = Recording()
    stream = _Stream(raw)
    body = b"x" * (_HOLD_MAX + 1)
    await stream.write(b"head")
    await stream.write(body)
    assert raw.sends == [b"head" + body]


async def test_a_failed_send_still_reads_what_the_server_answered() -> None:
    stream = _Stream(Recording(ANSWER, broken=True))
    await stream.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await stream.read(1024) == ANSWER
