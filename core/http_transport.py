"""The engine's outbound HTTP transport: httpx2's own, minus two per-request costs.

1. Before every request and after every response, httpcore2's connection pool asks each
   idle keep-alive connection whether the server has closed it
   (``get_extra_info("is_readable")``). Over anyio that lookup rebuilds the socket's whole
   attribute map every time — a ``getpeername`` call, address parsing, a function-level
   import — so with a few dozen connections to one upstream it was ~20 % of
   ``modelreins serve``'s CPU per dispatch. Our streams keep their socket at hand.
2. A request's head and body went out in two sends; a small request now goes in one
   (see :class:`_Stream`): another ~5 %.

(Both measured with bench/rest_dispatch.py.) ``httpx2.AsyncHTTPTransport`` takes no network
backend, so :class:`PooledTransport` builds the pool itself, through httpcore2's public API,
and adapts it to httpx2 exactly as httpx2's transport does: the request in, the streamed
response out, httpcore2's exceptions raised as httpx2's. Proxies from the environment
still go through the client's own (stock) proxy transports.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpcore2
import httpx2

__all__ = ["PooledTransport"]

# Most specific first: the first match wins (as in httpx2's own mapping).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx2.TransportError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.ProxyError, httpx2.ProxyError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
)


@contextmanager
def _as_httpx() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for theirs, ours in _EXCEPTIONS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


_HOLD_MAX = 64 * 1024
"""Bytes of a request held back to go out with the rest; larger bodies stream as they come."""


def _readable(sock: socket.socket | None) -> bool:
    """What httpcore2 asks: is there something (EOF, usually) to read on an idle socket?"""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore2.AsyncNetworkStream):
    """anyio's stream, with its socket looked up once instead of on every idle check, and
    a small request sent in one piece.

    httpcore2 writes a request's head and body separately, then reads the answer (HTTP/1.1
    only: this pool never upgrades a connection). With TCP_NODELAY each write is its own
    segment: a syscall here, a wake-up at the peer. So writes are held (up to
    :data:`_HOLD_MAX` bytes) until the first read, which sends them together. A failed send
    there is ignored, as httpcore2 ignores one while writing: the server may have answered
    already, and the read tells.
    """

    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")
        self._held: list[bytes] = []
        self._held_size = 0
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            with suppress(httpcore2.WriteError):
                await self._send_held()
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._held.append(buffer)
        self._held_size += len(buffer)
        self._write_timeout = timeout
        if self._held_size > _HOLD_MAX:
            await self._send_held()

    async def _send_held(self) -> None:
        data = b"".join(self._held)
        self._held.clear()
        self._held_size = 0
        await self._stream.write(data, self._write_timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore2.AsyncNetworkStream:
        return _Stream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


class _Backend(httpcore2.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._anyio = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _Stream(await self._anyio.connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _Stream(await self._anyio.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._anyio.sleep(seconds)


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class PooledTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncHTTPTransport(limits=…, socket_options=…)`` with default TLS
    verification, on a pool whose idle-connection check is cheap (see the module doc)."""

    def __init__(self, *, limits: httpx2.Limits,
                 socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            socket_options=socket_options,
            network_backend=_Backend(),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        core_request = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                              port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx2.Response(status_code=response.status, headers=response.headers,
                               stream=_ResponseStream(response.stream),
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()
