"""A deliberately cheap HTTP/1.1 keep-alive client, to generate load in benchmarks.

On a small machine the load generator shares the CPU with the server it measures; an
``httpx2.AsyncClient`` spends over a millisecond of CPU per request here, more than the
server under test would be allowed, so throughput numbers end up measuring the client.
This one writes a prebuilt request in one piece and reads the answer with asyncio streams:
status line, ``Content-Length`` body (no chunked answers), keep-alive connections reused
from a free list unless the server has closed them meanwhile, a fresh connection whenever
every open one is busy.

    async with FastClient("http://127.0.0.1:8484") as client:
        status, body = await client.post_json("/api/dispatch", {"prompt": "hi"},
                                              {"Authorization": "Bearer …"})
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FastClient"]

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class FastClient:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, not {url}")
        self.host, self.port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self._authority = f"{self.host}:{self.port}".encode()
        self._idle: list[_Connection] = []

    async def __aenter__(self) -> FastClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            await writer.wait_closed()

    def encode(self, method: str, path: str, body: bytes = b"",
               headers: Mapping[str, str] | None = None) -> bytes:
        """The request's bytes; build once and :meth:`send` many times."""
        lines = [f"{method} {self.prefix}{path} HTTP/1.1".encode(), b"host: " + self._authority]
        lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def json_request(self, path: str, payload: Any,
                     headers: Mapping[str, str] | None = None) -> bytes:
        """A ``POST`` of ``payload`` as JSON, encoded."""
        return self.encode("POST", path, json.dumps(payload).encode(),
                           {"content-type": "application/json", **(headers or {})})

    async def post_json(self, path: str, payload: Any,
                        headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        return await self.send(self.json_request(path, payload, headers))

    async def _connection(self) -> _Connection:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof():
                return reader, writer
            writer.close()  # the server closed it while idle (its keep-alive timeout)
        return await asyncio.open_connection(self.host, self.port)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send an encoded request; the answer's status and body."""
        reader, writer = await self._connection()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = None, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            if length is None:
                raise ValueError("answer without Content-Length")
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status, body
