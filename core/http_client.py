"""The providers' outbound HTTP/1.1 client: keep-alive pools on asyncio protocols.

Every dispatch to an HTTP upstream is one request here, so its cost is the engine's cost:
an ``httpx2.AsyncClient`` spent ~0.8 ms of CPU per request on this project's 2-core
benchmark machine (request and response objects, cookie and redirect handling, httpcore2's
pool and h11's pure-Python parser, anyio streams), the whole client here ~0.07 ms
(``bench/rest_dispatch.py``). What it does, it does as httpx2 did for the providers:

- one pool of keep-alive connections per origin (scheme, host, port), at most
  ``max_connections`` at once (PoolTimeout past the timeout), idle ones closed after
  ``keepalive_s``; a connection the server closed while idle is noticed by its protocol
  (no syscall per reuse), and a request that finds its reused connection closed before
  any answer byte is sent once more on a fresh one;
- TLS with httpx2's default context (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
  ALPN ``http/1.1``, SNI; TCP_NODELAY;
- responses parsed by httptools (Content-Length, chunked, or until the server closes),
  ``gzip``/``deflate`` bodies decoded; streamed bodies are read as they arrive, with the
  socket paused while more than :data:`BUFFER_HIGH` bytes wait to be read;
- one ``timeout`` per request for each phase — waiting for a connection, connecting, and
  every wait for the next bytes of the answer (so a stalled stream times out too);
- failures raised as httpx2's exception types (ConnectError, ConnectTimeout, PoolTimeout,
  ReadTimeout, ReadError, RemoteProtocolError, LocalProtocolError, DecodingError), which
  :mod:`core.providers.failures` classifies.

Proxy variables are not read, as they were not for the providers before (their client had
an explicit transport, which httpx2 does not route through proxies).
"""

from __future__ import annotations

import asyncio
import codecs
import re
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx2

__all__ = ["BUFFER_HIGH", "Headers", "HttpClient", "Response", "StreamedResponse", "Target",
           "encode_headers"]

BUFFER_HIGH = 1 << 20
"""Bytes of an answer buffered before the socket is paused until the reader catches up."""
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = "modelreins"
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Target:
    """A parsed request URL: where to connect and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    """The request target: path and query."""
    authority: str
    """The ``host`` header."""

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme in {url!r}")
        if not parts.hostname:
            raise httpx2.LocalProtocolError(f"no host in {url!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise httpx2.LocalProtocolError(f"bad port in {url!r}") from exc
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        authority = shown if port == _DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, host, port, path, authority)

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


Headers = Sequence[tuple[str, str]] | bytes
"""A request's headers: name-value pairs, or lines already made by :func:`encode_headers`
(callers that send the same headers every time encode them once)."""


def encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    """Header lines for a request; LocalProtocolError for a value that would break the
    message (a line break in a pasted key) or cannot be sent (not Latin-1)."""
    lines = []
    for name, value in headers:
        if not name or any(c in name for c in ":\r\n\0 \t"):
            raise httpx2.LocalProtocolError(f"illegal header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise httpx2.LocalProtocolError(f"illegal header value for {name}")
        try:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError as exc:
            raise httpx2.LocalProtocolError(f"header {name} is not Latin-1") from exc
    return b"".join(lines)


class _Decoder:
    """``Content-Encoding`` of a body: identity, gzip or deflate."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise httpx2.DecodingError(f"unsupported content-encoding {encoding!r}")

    def decode(self, data: bytes) -> bytes:
        if self._z is None:
            return data
        try:
            return self._z.decompress(data)
        except zlib.error as exc:
            raise httpx2.DecodingError(f"undecodable body: {exc}") from exc

    def flush(self) -> bytes:
        if self._z is None:
            return b""
        try:
            return self._z.flush()
        except zlib.error as exc:
            raise httpx2.DecodingError(f"undecodable body: {exc}") from exc


@dataclass
class _Exchange:
    """One request's answer as the protocol receives it."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    head_done: bool = False
    chunks: deque[bytes] = field(default_factory=deque)
    buffered: int = 0
    complete: bool = False
    received: bool = False
    """Whether any byte of the answer arrived (a reused connection that closes before
    that may be retried)."""
    until_eof: bool = True
    """No Content-Length and not chunked: the body ends when the server closes."""
    keep_alive: bool = False
    error: Exception | None = None
    waiter: asyncio.Future[None] | None = None


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a request at a time, its answer parsed as it arrives."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.closed = False
        self.used = False
        self.idle_since = 0.0
        self._paused = False
        self._loop = asyncio.get_running_loop()
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        exchange.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx2.RemoteProtocolError(f"malformed answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ended(exc)

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.exchange is not None
        key = name.decode("latin-1").lower()
        if key in ("content-length", "transfer-encoding"):
            self.exchange.until_eof = False
        self.exchange.headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.status = self.parser.get_status_code()
        exchange.keep_alive = self.parser.should_keep_alive()
        if exchange.status < 200:  # 1xx interim answer: the real one follows
            exchange.headers = []
            exchange.until_eof = True
            return
        exchange.head_done = True
        if exchange.status in (204, 304):
            exchange.until_eof = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.chunks.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > BUFFER_HIGH and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or not exchange.head_done:
            return  # the end of a 1xx answer
        exchange.complete = True
        self._wake()

    # -- the client's side

    def start(self, data: bytes) -> _Exchange:
        assert self.transport is not None
        self.exchange = _Exchange()
        self.used = True
        self.transport.write(data)
        return self.exchange

    async def wait(self, exchange: _Exchange, timeout: float | None) -> None:
        """Until something new arrives for ``exchange`` (or it fails, or ``timeout``
        seconds pass: ReadTimeout)."""
        if exchange.error is not None:
            raise exchange.error
        waiter = exchange.waiter = self._loop.create_future()
        if timeout is not None:
            # One lazy timer per connection rather than one per wait: it fires at the
            # deadline it was set for and, if a later wait moved the deadline, re-arms.
            self._deadline = self._loop.time() + timeout
            if self._timer is None:
                self._timer = self._loop.call_at(self._deadline, self._check_deadline)
        try:
            await waiter
        finally:
            exchange.waiter = None
            self._deadline = None
        if exchange.error is not None:
            raise exchange.error

    def _check_deadline(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.closed:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
            return
        waiter = self.exchange.waiter if self.exchange is not None else None
        if waiter is not None and not waiter.done():
            waiter.set_exception(httpx2.ReadTimeout("timed out waiting for the answer"))

    def take(self, exchange: _Exchange) -> bytes:
        data = b"".join(exchange.chunks)
        exchange.chunks.clear()
        exchange.buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        exchange = self.exchange
        return (not self.closed and exchange is not None and exchange.complete
                and exchange.keep_alive and not exchange.chunks)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()

    def _ended(self, exc: Exception | None = None) -> None:
        exchange = self.exchange
        if exchange is None or exchange.complete:
            return
        if exchange.head_done and exchange.until_eof:
            exchange.complete = True
            exchange.keep_alive = False
            self._wake()
            return
        detail = f": {exc}" if exc else ""
        if exchange.head_done:
            self._fail(httpx2.RemoteProtocolError(
                f"server closed the connection mid-answer{detail}"))
        elif isinstance(exc, OSError):
            self._fail(httpx2.ReadError(f"connection lost before the answer{detail}"))
        else:
            self._fail(httpx2.RemoteProtocolError("server disconnected without sending an answer"))

    def _fail(self, error: Exception) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.error is None and not exchange.complete:
            exchange.error = error
            self._wake()

    def _wake(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.waiter is not None and not exchange.waiter.done():
            exchange.waiter.set_result(None)


@dataclass
class Response:
    """A whole answer."""

    status_code: int
    headers: list[tuple[str, str]]
    """Lower-case names, in the order received."""
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class StreamedResponse:
    """An answer whose body is read as it arrives (inside :meth:`HttpClient.stream`)."""

    def __init__(self, conn: _Connection, exchange: _Exchange, timeout: float | None) -> None:
        self._conn = conn
        self._exchange = exchange
        self._timeout = timeout
        self.status_code = exchange.status
        self.headers = exchange.headers
        self._decoder = _Decoder(self._header("content-encoding") or "")
        self.content = b""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def _header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn, exchange = self._conn, self._exchange
        while True:
            if exchange.chunks:
                data = self._decoder.decode(conn.take(exchange))
                if data:
                    yield data
                continue
            if exchange.complete:
                tail = self._decoder.flush()
                if tail:
                    yield tail
                return
            await conn.wait(exchange, self._timeout)

    async def aread(self) -> bytes:
        self.content = b"".join([part async for part in self.aiter_bytes()])
        return self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body as text lines (UTF-8; ``\\n``, ``\\r\\n`` or ``\\r`` ends a line)."""
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        pending = ""
        async for data in self.aiter_bytes():
            text = pending + decode(data)
            # A final "\r" may be the first half of "\r\n": it waits for the next piece.
            held = text.endswith("\r")
            *lines, pending = _LINE_END.split(text[:-1] if held else text)
            if held:
                pending += "\r"
            for line in lines:
                yield line
        *lines, last = _LINE_END.split(pending + decode(b"", True))
        for line in lines:
            yield line
        if last:
            yield last


class HttpClient:
    """Pools of keep-alive connections per origin (see the module doc)."""

    def __init__(self, *, max_connections: int = 512, keepalive_s: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._active: dict[tuple[str, str, int], int] = {}
        self._queued: dict[tuple[str, str, int], deque[asyncio.Future[None]]] = {}
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = httpx2.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def request(self, method: str, target: Target, headers: Headers,
                      body: bytes = b"", *, timeout: float | None = None) -> Response:
        """Send a request and read the whole answer."""
        conn, exchange = await self._open(method, target, headers, body, timeout)
        try:
            response = StreamedResponse(conn, exchange, timeout)
            return Response(response.status_code, response.headers, await response.aread())
        finally:
            self._release(conn)
            self._free(target.origin)

    @asynccontextmanager
    async def stream(self, method: str, target: Target, headers: Headers,
                     body: bytes = b"", *, timeout: float | None = None,
                     ) -> AsyncIterator[StreamedResponse]:
        """Send a request; the block reads the answer. The connection goes back to the pool
        if the answer was read to its end, else it is closed."""
        conn, exchange = await self._open(method, target, headers, body, timeout)
        try:
            yield StreamedResponse(conn, exchange, timeout)
        finally:
            self._release(conn)
            self._free(target.origin)

    async def _open(self, method: str, target: Target, headers: Headers, body: bytes,
                    timeout: float | None) -> tuple[_Connection, _Exchange]:
        """A connection slot taken, the request sent and the answer's head received; the
        caller releases the connection and frees the slot."""
        if self._closed:
            raise httpx2.LocalProtocolError("the client is closed")
        data = self._encode(method, target, headers, body)
        await self._acquire(target.origin, timeout)
        try:
            conn, exchange = await self._send(target, data, timeout)
        except BaseException:
            self._free(target.origin)
            raise
        try:
            while not exchange.head_done:
                await conn.wait(exchange, timeout)
        except BaseException:
            self._release(conn)
            self._free(target.origin)
            raise
        return conn, exchange

    @staticmethod
    def _encode(method: str, target: Target, headers: Headers, body: bytes) -> bytes:
        head = (f"{method} {target.path} HTTP/1.1\r\nhost: {target.authority}\r\n"
                f"user-agent: {_USER_AGENT}\r\naccept: */*\r\n").encode("latin-1")
        length = b"content-length: %d\r\n" % len(body) if body or method in (
            "POST", "PUT", "PATCH") else b""
        lines = headers if isinstance(headers, bytes) else encode_headers(headers)
        return b"".join((head, lines, length, b"\r\n", body))

    async def _send(self, target: Target, data: bytes, timeout: float | None
                    ) -> tuple[_Connection, _Exchange]:
        """Write the request on a pooled connection (retried once on a fresh one if a
        reused connection turns out closed before any answer byte) or a new one."""
        conn = self._reuse(target.origin)
        if conn is not None:
            exchange = conn.start(data)
            try:
                if not exchange.head_done:
                    await conn.wait(exchange, timeout)
                return conn, exchange
            except (httpx2.ReadError, httpx2.RemoteProtocolError):
                conn.close()
                if exchange.received:
                    raise
        conn = await self._connect(target, timeout)
        return conn, conn.start(data)

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect(self, target: Target, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if target.scheme == "https" else None
        made = loop.create_connection(
            lambda: _Connection(target.origin), target.host, target.port, ssl=tls,
            server_hostname=target.host if tls else None)
        try:
            _transport, conn = await asyncio.wait_for(made, timeout)
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(f"timed out connecting to {target.authority}") from exc
        except ssl.SSLError as exc:
            raise httpx2.ConnectError(f"TLS handshake with {target.authority} failed: {exc}"
                                      ) from exc
        except OSError as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if self._closed or not conn.reusable():
            conn.close()
            return
        conn.exchange = None
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)

    async def _acquire(self, origin: tuple[str, str, int], timeout: float | None) -> None:
        active = self._active.get(origin, 0)
        if active < self.max_connections:
            self._active[origin] = active + 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queued.setdefault(origin, deque())
        queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError as exc:
            if waiter.done():  # handed a slot just as time ran out: pass it on
                self._free(origin)
            else:
                waiter.cancel()
            raise httpx2.PoolTimeout("timed out waiting for a free connection") from exc
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._free(origin)
            else:
                waiter.cancel()
            raise
        # The slot was handed over by _free: the active count already includes it.

    def _free(self, origin: tuple[str, str, int]) -> None:
        queue = self._queued.get(origin)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._active[origin] -= 1

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
