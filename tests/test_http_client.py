"""The providers' outbound client (core.http_client) against raw loopback servers.

How each failure is classified is covered by the provider suite, which runs on this client
(tests/providers); here: the HTTP/1.1 mechanics — keep-alive reuse, idle connections the
server closed, the stale-connection retry, body framings, decoding, lines, the pool limit,
timeouts, TLS.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
import trustme

from core.http_client import BUFFER_HIGH, HttpClient, Target

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@asynccontextmanager
async def raw_server(handler: Handler, *, tls: ssl.SSLContext | None = None
                     ) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback server running ``handler`` per connection; yields its base URL and the
    request heads received so far (``accepted`` is their connection count)."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    async with server:
        yield f"{scheme}://127.0.0.1:{port}", heads


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request: its head and (Content-Length) body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


def keep_alive(answer: bytes, *, accepted: list[int]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        while True:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
    return handler


async def get(client: HttpClient, url: str, timeout: float | None = None
              ) -> tuple[int, bytes]:
    response = await client.request("GET", Target.parse(url), [], timeout=timeout)
    return response.status_code, response.content


async def test_idle_connections_are_reused() -> None:
    accepted = [0]
    async with raw_server(keep_alive(OK, accepted=accepted)) as (url, _), HttpClient() as c:
        for _ in range(3):
            assert await get(c, url + "/") == (200, b"ok")
    assert accepted[0] == 1


async def test_the_request_goes_out_in_one_piece_with_its_headers() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(65536))  # one read: one segment on loopback
        writer.write(OK)
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        target = Target.parse(url + "/v1/x?y=1")
        answer = await c.request("POST", target, [("authorization", "Bearer k")], b"{}")
    assert answer.status_code == 200
    head, body = seen[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/x?y=1 HTTP/1.1"
    assert f"host: {target.authority}".encode() in lines
    assert b"authorization: Bearer k" in lines
    assert b"content-length: 2" in lines
    assert body == b"{}"


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    accepted = [0]
    closed = anyio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        await read_request(reader)
        writer.write(OK)  # keep-alive promised, then closed: a keep-alive timeout
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        assert await get(c, url) == (200, b"ok")
        with anyio.fail_after(5):
            await closed.wait()
        await anyio.wait_all_tasks_blocked()  # let the client's protocol see the EOF
        assert await get(c, url) == (200, b"ok")
    assert accepted[0] == 2


async def test_a_reused_connection_closed_before_any_answer_is_retried_once() -> None:
    # The first connection answers once, then reads the next request and closes without a
    # byte: a server that timed the connection out just as the request went out.
    accepted = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        if accepted[0] == 1:
            await read_request(reader)
            return
        while True:
            await read_request(reader)
            writer.write(OK)
            await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        assert await get(c, url) == (200, b"ok")
        assert await get(c, url) == (200, b"ok")
    assert accepted[0] == 2


async def test_a_fresh_connection_closed_before_any_answer_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(handler) as (url, _), HttpClient() as c:
        with pytest.raises(httpx2.RemoteProtocolError, match="without sending an answer"):
            await get(c, url)


async def test_an_answer_cut_short_is_an_error_and_not_retried() -> None:
    accepted = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        with pytest.raises(httpx2.RemoteProtocolError, match="mid-answer"):
            await get(c, url)
    assert accepted[0] == 1


@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde"),
    (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end", b"until the end"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 1\r\n\r\nx", b"x"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
])
async def test_body_framings(answer: bytes, body: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        _, content = await get(c, url)
    assert content == body


@pytest.mark.parametrize(("encoding", "squash"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress)])
async def test_compressed_bodies_are_decoded(encoding: str,
                                             squash: Callable[[bytes], bytes]) -> None:
    packed = squash(b"hello " * 100)
    answer = (f"HTTP/1.1 200 OK\r\ncontent-encoding: {encoding}\r\n"
              f"content-length: {len(packed)}\r\n\r\n").encode() + packed

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        assert await get(c, url) == (200, b"hello " * 100)


async def test_an_unknown_content_encoding_is_a_decoding_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: zz\r\ncontent-length: 1\r\n\r\nx")
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c:
        with pytest.raises(httpx2.DecodingError):
            await get(c, url)


async def test_lines_split_anywhere_including_between_cr_and_lf() -> None:
    pieces = [b"data: o", b"ne\r", b"\ndata: tw\xc3", b"\xa9\n\ndata: three\rlast"]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c, \
            c.stream("GET", Target.parse(url), []) as response:
        lines = [line async for line in response.aiter_lines()]
    assert lines == ["data: one", "data: twé", "", "data: three", "last"]


async def test_a_big_streamed_body_arrives_whole_through_the_paused_socket() -> None:
    size = 3 * BUFFER_HIGH + 12345

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"y" * size)
        await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient() as c, \
            c.stream("GET", Target.parse(url), []) as response:
        await anyio.wait_all_tasks_blocked()  # let the buffer fill past the high mark
        total = 0
        async for part in response.aiter_bytes():
            total += len(part)
    assert total == size


async def test_a_stalled_answer_times_out_and_its_connection_is_dropped() -> None:
    accepted = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")
        await writer.drain()
        await reader.read()  # never finishes the body

    async with raw_server(handler) as (url, _), HttpClient() as c:
        with pytest.raises(httpx2.ReadTimeout):
            await get(c, url, timeout=0.05)
        with pytest.raises(httpx2.ReadTimeout):
            await get(c, url, timeout=0.05)
    assert accepted[0] == 2


async def test_the_pool_limit_queues_then_times_out() -> None:
    release = anyio.Event()
    accepted = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        while True:
            await read_request(reader)
            await release.wait()
            writer.write(OK)
            await writer.drain()

    async with raw_server(handler) as (url, _), HttpClient(max_connections=1) as c:
        results: list[tuple[int, bytes]] = []
        async with anyio.create_task_group() as tg:
            async def one() -> None:
                results.append(await get(c, url))
            tg.start_soon(one)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(httpx2.PoolTimeout):
                await get(c, url, timeout=0.01)
            tg.start_soon(one)  # waits for the only connection, then reuses it
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert results == [(200, b"ok"), (200, b"ok")]
    assert accepted[0] == 1


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with HttpClient() as c:
        with pytest.raises(httpx2.ConnectError):
            await get(c, f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("value", ["a\r\nx-evil: 1", "nul\0", "snow☃"])
async def test_a_header_value_that_cannot_be_sent_is_refused_before_connecting(
        value: str) -> None:
    async with HttpClient() as c:
        with pytest.raises(httpx2.LocalProtocolError):
            await c.request("GET", Target.parse("http://127.0.0.1:9"), [("x-key", value)])


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///x", "http://h:99999/x"])
def test_urls_it_cannot_use(url: str) -> None:
    with pytest.raises((httpx2.UnsupportedProtocol, httpx2.LocalProtocolError)):
        Target.parse(url)


def test_targets() -> None:
    assert Target.parse("https://api.example.com/v1/messages") == Target(
        "https", "api.example.com", 443, "/v1/messages", "api.example.com")
    assert Target.parse("http://[::1]:8080").authority == "[::1]:8080"
    assert Target.parse("http://h").path == "/"


async def test_https_with_a_trusted_certificate_and_sni() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    accepted = [0]
    async with raw_server(keep_alive(OK, accepted=accepted), tls=server_ctx) as (url, _):
        url = url.replace("127.0.0.1", "localhost")
        async with HttpClient(ssl_context=client_ctx) as c:
            assert await get(c, url) == (200, b"ok")
            assert await get(c, url) == (200, b"ok")
        assert accepted[0] == 1
        # The default trust store does not know this CA: the handshake fails, clearly.
        async with HttpClient() as c:
            with pytest.raises(httpx2.ConnectError, match="TLS"):
                await get(c, url)
