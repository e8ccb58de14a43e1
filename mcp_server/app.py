"""The ``modelreins serve`` application: one Starlette app, one process.

Route modules (:data:`ROUTE_MODULES`) each contribute routes, the path prefixes that need a
bearer token, and optionally a lifespan (the MCP session manager). The app's lifespan opens
the engine, enters those lifespans, starts the scheduler and the queue's maintenance loop,
and unwinds in reverse on shutdown: sessions end, then the engine (and its store) closes.

Middleware, outermost first: :class:`~mcp_server.hosts.HostGuard` (every route), then
:class:`~mcp_server.auth.BearerAuth` (protected prefixes only). Errors anywhere in the app —
no route, wrong method, an engine error, a crash — answer with the §5 error body
(:mod:`mcp_server.rest.errors`).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from core.config import ServerConfig
from core.engine import Engine
from mcp_server.auth import BearerAuth, request_principal
from mcp_server.hosts import HostGuard, allowed_names
from mcp_server.rest.errors import EXCEPTION_HANDLERS
from mcp_server.server import build_server

__all__ = [
    "ROUTE_MODULES",
    "AppContext",
    "Contribution",
    "EngineOpener",
    "EngineSlot",
    "build_app",
    "path_policy",
    "stop_waiting",
]

ROUTE_MODULES = [
    "mcp_server.routes.health",
    "mcp_server.routes.mcp",
    "mcp_server.routes.dispatch",
    "mcp_server.routes.providers",
    "mcp_server.routes.tasks",
    "mcp_server.routes.tokens",
    "mcp_server.routes.view",
    "mcp_server.routes.audit",
    "mcp_server.routes.jobs",
    "mcp_server.routes.workers",
    "mcp_server.routes.reviews",
    "mcp_server.routes.worker_protocol",
    "mcp_server.routes.artifacts",
    "mcp_server.routes.openapi",
]

EngineOpener = Callable[[], AbstractAsyncContextManager[Engine]]
"""Opens the engine for the app's lifetime (``lambda: Engine.open(home)``)."""

OnReady = Callable[[Engine], Awaitable[None]]


class EngineSlot:
    """The engine while the app runs; routes and tools call it per request."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def __call__(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the engine is not running (outside the app's lifespan)")
        return self.engine


@dataclass(frozen=True)
class AppContext:
    """What a route module gets to build its routes from."""

    config: ServerConfig
    engine: EngineSlot
    mcp: MCPServer


@dataclass(frozen=True)
class Contribution:
    """What a route module adds to the app."""

    routes: list[BaseRoute] = field(default_factory=list)
    protected: tuple[str, ...] = ()
    """Path prefixes whose requests need an authenticated caller."""
    public: tuple[str, ...] = ()
    """Path prefixes that stay open even under a protected prefix (``/api/health``)."""
    lifespan: Callable[[], AbstractAsyncContextManager[None]] | None = None


def _under(prefixes: Sequence[str], path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def path_policy(parts: Sequence[Contribution]) -> Callable[[str], bool]:
    """Whether a path needs a caller: under some protected prefix and no public one."""
    protected = [p for part in parts for p in part.protected]
    public = [p for part in parts for p in part.public]

    def needs_caller(path: str) -> bool:
        return _under(protected, path) and not _under(public, path)

    return needs_caller


def build_app(
    open_engine: EngineOpener,
    config: ServerConfig,
    *,
    on_ready: OnReady | None = None,
    route_modules: Sequence[str] = ROUTE_MODULES,
) -> Starlette:
    """The HTTP app for ``config`` (host, auth mode, public URL, body limit).

    ``on_ready`` runs once the engine is open and before the first request is served (the
    CLI announces the admin token there).
    """
    slot = EngineSlot()
    ctx = AppContext(config=config, engine=slot,
                     mcp=build_server(slot, principal_of=request_principal))
    parts = [importlib.import_module(name).contribute(ctx) for name in route_modules]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_engine() as engine, AsyncExitStack() as stack:
            slot.engine = engine
            try:
                for part in parts:
                    if part.lifespan is not None:
                        await stack.enter_async_context(part.lifespan())
                engine.start_scheduler()
                engine.start_maintenance()
                if on_ready is not None:
                    await on_ready(engine)
                yield
            finally:
                await stack.aclose()
                slot.engine = None

    app = Starlette(
        routes=[route for part in parts for route in part.routes],
        middleware=[
            Middleware(HostGuard, names=allowed_names(config.host, config.public_url)),
            Middleware(BearerAuth, engine=slot, protected=path_policy(parts),
                       require_token=config.auth == "token"),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.engine_slot = slot
    return app


def stop_waiting(app: Starlette) -> None:
    """The server is shutting down: long-polls in flight answer now with what they have,
    instead of holding the graceful shutdown for the rest of their wait."""
    slot: EngineSlot = app.state.engine_slot
    if slot.engine is not None:
        slot.engine.queue.stop_waiting()
