"""Fixtures for the REST edge: the whole ``serve`` app on a loopback port, over an engine
on scripted providers, with a token per kind of caller."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from core.clock import Clock
from core.config import ServerConfig, parse_settings
from core.engine import Engine, open_memory_store
from mcp_server.app import build_app
from mcp_server.rest.endpoint import Endpoint
from mcp_server.routes import audit, dispatch, health, openapi, providers, tasks, tokens, view
from tests.mcp.conftest import PROVIDERS, engine_opener, scripted_settings, serve_app
from tests.support.scripted import ScriptedProvider

MAX_BODY = 16 * 1024
"""The body limit of the test server (small, so the 413 tests stay cheap)."""

ENDPOINTS: list[Endpoint] = [
    *health.ENDPOINTS, *dispatch.ENDPOINTS, *providers.ENDPOINTS, *tasks.ENDPOINTS,
    *tokens.ENDPOINTS, *view.ENDPOINTS, *audit.ENDPOINTS, *openapi.ENDPOINTS,
]
"""The whole REST table."""

PROTECTED = [e for e in ENDPOINTS if e.scope is not None]


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def concrete(path: str, value: str = "nope") -> str:
    """A table path with every ``{param}`` filled in."""
    return re.sub(r"{\w+}", value, path)


@pytest.fixture
def scripted() -> dict[str, ScriptedProvider]:
    """``main`` (default), ``backup`` (fallback) and ``other``, each answering "ok"."""
    return {name: ScriptedProvider(name) for name in PROVIDERS}


@asynccontextmanager
async def open_engine(
    home: Path, scripted: dict[str, ScriptedProvider], *, clock: Clock | None = None,
    on_disk: bool = False, **server: Any,
) -> AsyncIterator[Engine]:
    """An engine on the scripted providers; ``on_disk`` keeps its store in
    ``home/modelreins.db`` (else in memory)."""
    settings = parse_settings(scripted_settings() | {"server": server}, env={})
    store = None if on_disk else open_memory_store()
    async with Engine.open(home, settings=settings, store=store, clock=clock) as engine:
        engine.providers.clear()
        engine.providers.update(scripted)
        yield engine


@dataclass
class Api:
    """A running server and a token for each kind of caller."""

    url: str
    engine: Engine
    admin: str
    user: str
    """dispatch, tasks:read, tasks:write."""
    reader: str
    """tasks:read only."""
    other: str
    """dispatch, restricted to provider ``other``."""
    revoked: str

    def client(self, token: str | None = None, **kwargs: Any) -> httpx2.AsyncClient:
        """A client sending ``token`` (the admin's by default; ``""`` for none)."""
        token = self.admin if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx2.AsyncClient(base_url=self.url, headers=headers, trust_env=False,
                                  timeout=10, **kwargs)


async def mint_callers(engine: Engine) -> dict[str, str]:
    minted = {}
    for name, scopes, allowed in (
        ("admin", ["admin"], None),
        ("user", ["dispatch", "tasks:read", "tasks:write"], None),
        ("reader", ["tasks:read"], None),
        ("other", ["dispatch"], ["other"]),
        ("revoked", ["admin"], None),
    ):
        info, raw = await engine.tokens.mint(name, scopes, allowed)
        minted[name] = raw
        if name == "revoked":
            await engine.tokens.revoke(info.id)
    return minted


def rest_app(engine: Engine, **server: Any) -> Any:
    return build_app(engine_opener(engine), ServerConfig(**server))


@asynccontextmanager
async def running_api(engine: Engine, **server: Any) -> AsyncIterator[Api]:
    minted = await mint_callers(engine)
    async with serve_app(rest_app(engine, **server)) as url:
        yield Api(url, engine, **minted)


@pytest.fixture
async def api(tmp_path: Path, scripted: dict[str, ScriptedProvider]) -> AsyncIterator[Api]:
    async with open_engine(tmp_path, scripted, maxBodyBytes=MAX_BODY) as engine, \
            running_api(engine, max_body_bytes=MAX_BODY) as running:
        yield running


@pytest.fixture
async def admin(api: Api) -> AsyncIterator[httpx2.AsyncClient]:
    async with api.client() as client:
        yield client


def error_of(response: httpx2.Response, status: int, code: str | None = None
             ) -> dict[str, Any]:
    """The §5 error object of ``response``, checked to have ``status`` (and ``code``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "provider", "retryAfter", "details"}
    if code is not None:
        assert error["code"] == code, error
    return dict(error)
