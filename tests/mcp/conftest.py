"""Fixtures for the MCP edge: an engine on scripted providers, servers, clients, a live app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent
from starlette.applications import Starlette

from core.config import ServerConfig, parse_settings
from core.engine import Engine, open_memory_store
from core.principal import Principal
from mcp_server.app import build_app
from mcp_server.server import build_server
from tests.support.loopback import bound_socket
from tests.support.scripted import ScriptedProvider

PROVIDERS = ("main", "backup", "other")


@pytest.fixture
def scripted() -> dict[str, ScriptedProvider]:
    """``main`` (default), ``backup`` (fallback) and ``other``, each answering "ok"."""
    return {name: ScriptedProvider(name) for name in PROVIDERS}


def scripted_settings(default: bool = True) -> dict[str, Any]:
    return {"providers": {
        "main": {"type": "echo", "default": default},
        "backup": {"type": "echo", "fallback": True},
        "other": {"type": "echo"},
    }}


@asynccontextmanager
async def open_scripted_engine(
    tmp_path: Path, scripted: dict[str, ScriptedProvider], *, default: bool = True,
    server: dict[str, Any] | None = None,
) -> AsyncIterator[Engine]:
    raw = scripted_settings(default) | ({"server": server} if server else {})
    settings = parse_settings(raw, env={})
    async with Engine.open(tmp_path, settings=settings, store=open_memory_store()) as engine:
        engine.providers.clear()
        engine.providers.update(scripted)
        yield engine


@pytest.fixture
async def engine(tmp_path: Path, scripted: dict[str, ScriptedProvider]) -> AsyncIterator[Engine]:
    async with open_scripted_engine(tmp_path, scripted) as eng:
        yield eng


def as_caller(principal: Principal) -> Callable[[Context], Principal]:
    return lambda _ctx: principal


@pytest.fixture(params=["legacy", "auto"])
def era(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: the classic initialize handshake and the per-request 2026 era."""
    return str(request.param)


def connect(server: MCPServer, era: str = "legacy") -> Client:
    return Client(server, mode=era)


@pytest.fixture
async def client(engine: Engine, era: str) -> AsyncIterator[Client]:
    """An in-memory client of the main server, acting as the local owner."""
    async with connect(build_server(lambda: engine), era) as c:
        yield c


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def error_of(result: CallToolResult) -> dict[str, Any]:
    """The §5 error object of a failed call, checked to agree between text and structure."""
    assert result.is_error, text(result)
    assert result.structured_content is not None
    error = result.structured_content["error"]
    assert text(result).startswith(f"{error['code']}: ")
    return dict(error)


@asynccontextmanager
async def serve_app(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral loopback port with a real lifespan and a graceful stop."""
    sock = bound_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", log_config=None,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
    sock.close()


def engine_opener(engine: Engine) -> Callable[[], AbstractAsyncContextManager[Engine]]:
    """Hand an already-open engine to :func:`build_app` (the test owns its lifetime)."""

    @asynccontextmanager
    async def opener() -> AsyncIterator[Engine]:
        yield engine

    return opener


def live_app(engine: Engine, **server: Any) -> Starlette:
    return build_app(engine_opener(engine), ServerConfig(**server))
