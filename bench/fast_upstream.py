"""A deliberately cheap fake OpenAI-compatible upstream for benchmarks.

The Starlette fake (``tests.fakes.upstreams``) is right for correctness tests — switchable
failure modes, recorded requests — but on uvicorn it costs about as much CPU per request
as the server being measured, so on a small machine a throughput benchmark ends up
measuring the fake. This one is a bare :class:`asyncio.Protocol`: HTTP/1.1 with keep-alive
(and pipelining), parsing only the request line, ``Content-Length`` and ``Connection``, and
answering every ``POST …/chat/completions`` with one canned, non-streamed completion and
``GET …/models`` with a one-model listing. Anything else is a 404; a body it cannot
delimit (chunked) is a 411 and the connection is closed.

    python -m bench.fast_upstream      # prints its root URL, serves until killed
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

__all__ = ["REPLY", "FastUpstream", "main", "serve"]

REPLY = "The quick brown fox jumps over the lazy dog."

_COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 6, "completion_tokens": 9, "total_tokens": 15},
}).encode()
_MODELS = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}).encode()
_NOT_FOUND = b'{"error": {"message": "not found", "type": "invalid_request_error"}}'
_NO_LENGTH = b'{"error": {"message": "a Content-Length is required", "type": "bad_request"}}'


def _response(status: str, body: bytes, *, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return (b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: " + connection
            + b"\r\n\r\n" + body)


_ROUTES = {
    (b"POST", b"/v1/chat/completions"): ("200 OK", _COMPLETION),
    (b"POST", b"/chat/completions"): ("200 OK", _COMPLETION),
    (b"GET", b"/v1/models"): ("200 OK", _MODELS),
    (b"GET", b"/models"): ("200 OK", _MODELS),
}
# Built once, (keep-alive, close) per route: a request costs a lookup and one write.
_ANSWERS = {key: (_response(status, body), _response(status, body, close=True))
            for key, (status, body) in _ROUTES.items()}
_MISSING = (_response("404 Not Found", _NOT_FOUND),
            _response("404 Not Found", _NOT_FOUND, close=True))
_LENGTH_REQUIRED = _response("411 Length Required", _NO_LENGTH, close=True)


class FastUpstream(asyncio.Protocol):
    """One connection: buffer bytes, answer each complete request in order."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and self._answer_one():
            pass

    def _answer_one(self) -> bool:
        """Answer the first buffered request if it is complete; whether one was answered."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self.buffer[:end].split(b"\r\n")
        method, _, rest = head[0].partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        length, close = 0, False
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                return self._finish(_LENGTH_REQUIRED)
        if len(self.buffer) < end + 4 + length:
            return False
        self.buffer = self.buffer[end + 4 + length:]
        answer = _ANSWERS.get((method, target), _MISSING)[close]
        if close:
            return self._finish(answer)
        assert self.transport is not None
        self.transport.write(answer)
        return True

    def _finish(self, answer: bytes) -> bool:
        assert self.transport is not None
        self.transport.write(answer)
        self.transport.close()
        self.transport = None
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(sock: socket.socket) -> None:
    """Serve on an already bound, listening socket until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FastUpstream, sock=sock)
    async with server:
        await server.serve_forever()


def main() -> None:
    # proto IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted sockets (see
    # tests/support/loopback.py): without it answers stall on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    host, port = sock.getsockname()[:2]
    print(f"http://{host}:{port}", flush=True)
    try:
        asyncio.run(serve(sock))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
