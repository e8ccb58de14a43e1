"""``modelreins serve``: MCP over Streamable HTTP and SSE, the API and the scheduler, one process.

The first start of a home with token auth and no admin token mints one named ``admin`` and
prints it once, to the terminal (stderr), with lines ready to paste. It is never logged and
cannot be shown again (mint another with the token commands if it is lost).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import uvicorn

from core import __version__
from core.bootstrap import ensure_home
from core.config import WILDCARD_HOSTS, ServerConfig, load_settings
from core.engine import Engine
from core.errors import field_error
from core.principal import LOCAL
from mcp_server.cli.common import EXIT_ERROR, add_home_arg, home_from, out

__all__ = ["admin_announcement", "register"]

GRACEFUL_SHUTDOWN_S = 10


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve MCP (Streamable HTTP /mcp, SSE /mcp/sse) and the API over HTTP")
    serve.add_argument("--host", help="interface to bind (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port (default: server.port, 8484; 0: any free)")
    add_home_arg(serve)
    serve.set_defaults(handler=cmd_serve)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0-65535")
    return value


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def _bind(host: str, port: int) -> socket.socket:
    """Bind before serving, so port 0 resolves to a real port we can print."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def base_url(config: ServerConfig, port: int) -> str:
    """The URL clients use: ``publicUrl`` if set, else the bound host (loopback if wildcard)."""
    if config.public_url:
        return config.public_url.rstrip("/")
    host = "127.0.0.1" if config.host in WILDCARD_HOSTS else config.host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{port}"


def admin_announcement(raw: str, url: str) -> str:
    """The once-only message carrying a freshly minted admin token."""
    header = f'--header "Authorization: Bearer {raw}"'
    return "\n".join([
        "",
        "First start: created an admin token. It is shown this once and never stored;",
        "copy it now.",
        "",
        f"  export MODELREINS_TOKEN={raw}",
        f"  claude mcp add --transport http modelreins {url}/mcp {header}",
        f"  claude mcp add --transport sse modelreins {url}/mcp/sse {header}",
        "",
    ])


def _announce(config: ServerConfig, url: str) -> Callable[[Engine], Awaitable[None]]:
    async def on_ready(engine: Engine) -> None:
        if config.auth == "token" and not await engine.tokens.has_admin():
            info, raw = await engine.tokens.mint("admin", ["admin"])
            await engine.audit.record(LOCAL.actor, "token.create", info.id, {
                "name": info.name, "kind": info.kind, "prefix": info.prefix,
                "scopes": info.scopes, "providers": info.providers, "firstStart": True,
            })
            out(admin_announcement(raw, url), stream=sys.stderr)
        out(f"modelreins {__version__} serving {url}/mcp (Streamable HTTP), {url}/mcp/sse "
            f"(SSE), {url}/api/health; auth: {config.auth}. Ctrl-C stops.", stream=sys.stderr)

    return on_ready


class _Server(uvicorn.Server):
    """uvicorn, except that a signal is not re-raised after the graceful shutdown it
    triggered: ``serve`` stopped by SIGINT/SIGTERM exits 0 with everything closed; and
    ``before_shutdown`` runs as the shutdown starts (to end long-polls, which would
    otherwise hold it for the rest of their wait)."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.before_shutdown()
        await super().shutdown(sockets)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def cmd_serve(args: argparse.Namespace) -> int:
    home = home_from(args)
    ensure_home(home)
    settings = load_settings(home)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    config = settings.server.model_copy(update=overrides)
    if config.auth == "none" and not _is_loopback(config.host):
        raise field_error("server.auth", f"'none' is only allowed on loopback, not {config.host}")
    from mcp_server.app import (  # the MCP SDK: loaded only by the commands that serve
        build_app,
        stop_waiting,
    )

    sock = _bind(config.host, config.port)
    url = base_url(config, sock.getsockname()[1])
    app = build_app(lambda: Engine.open(home, settings=settings), config,
                    on_ready=_announce(config, url))
    # uvicorn's http="auto" runs on httptools, a dependency for that reason (pyproject).
    server = _Server(uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S), lambda: stop_waiting(app))
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        out("error: the server did not start (see the log above)", stream=sys.stderr)
        return EXIT_ERROR
    out("modelreins stopped", stream=sys.stderr)
    return 0
