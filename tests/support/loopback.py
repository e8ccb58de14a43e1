"""Serve an ASGI app on an ephemeral 127.0.0.1 port, in the test's loop or in a thread.

The listening socket is bound before the server starts, so a client may connect at once:
the kernel queues the connection until uvicorn accepts it. Nothing sleeps to wait.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import uvicorn


def bound_socket() -> socket.socket:
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it every response stalls ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(app: Any, **config: Any) -> uvicorn.Server:
    cfg = uvicorn.Config(app, log_level="warning", lifespan="auto", **config)
    server = uvicorn.Server(cfg)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return server


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Run ``app`` in the current event loop; yields its base URL."""
    sock = bound_socket()
    server = _server(app, **config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield _url(sock)
        finally:
            server.should_exit = True
            server.force_exit = True
    sock.close()


@contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """Run ``app`` on its own thread and loop (for sync tests and subprocess clients)."""
    sock = bound_socket()
    server = _server(app, **config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
