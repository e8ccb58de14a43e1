"""Fixtures for the fleet: the whole ``serve`` app on a loopback port over an engine with a
hand-moved clock, a ``fleet`` provider, a token per kind of caller, and workers enrolled
the way an operator does it (register over REST, open the one-time view)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from core.clock import FakeClock
from core.config import ServerConfig, parse_settings
from core.engine import Engine, open_memory_store
from mcp_server.app import build_app
from tests.fleet.protocol import ProtocolWorker
from tests.mcp.conftest import engine_opener, serve_app

ARTIFACT_MAX = 4096
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SETTINGS: dict[str, Any] = {
    "providers": {
        "echo": {"type": "echo", "default": True},
        "fleet": {"type": "fleet", "tags": "code", "timeout": 20_000},
        "gpu-fleet": {"type": "fleet", "capability": "gpu", "timeout": 20_000},
    },
    "queue": {"artifactMaxBytes": ARTIFACT_MAX, "presenceWindowS": 30},
}

CALLERS: dict[str, list[str]] = {
    "admin": ["admin"],
    "user": ["dispatch", "jobs:read", "jobs:write"],
    "reader": ["jobs:read"],
    "approver": ["jobs:read", "jobs:approve"],
    "nobody": ["dispatch"],
}
"""Tokens minted for every test server, by caller."""


@asynccontextmanager
async def open_fleet_engine(home: Path, clock: FakeClock | None = None, *,
                            on_disk: bool = False) -> AsyncIterator[Engine]:
    settings = parse_settings(SETTINGS, env={}, home=home)
    store = None if on_disk else open_memory_store()
    async with Engine.open(home, settings=settings, store=store, clock=clock) as engine:
        yield engine


@dataclass
class Fleet:
    """A running server, its engine and clock, and a token per caller."""

    url: str
    engine: Engine
    clock: FakeClock
    tokens: dict[str, str]
    workers: list[ProtocolWorker] = field(default_factory=list)

    def client(self, who: str | None = "admin") -> httpx2.AsyncClient:
        """A client sending the token of ``who`` (a caller name or a raw token; None: no
        token)."""
        token = self.tokens.get(who, who) if who else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx2.AsyncClient(base_url=self.url, headers=headers, trust_env=False,
                                  timeout=30)

    async def register(self, name: str, capabilities: list[Any] | None = None,
                       tags: str = "") -> dict[str, Any]:
        """``POST /api/v1/workers/register`` as the admin; the registration."""
        async with self.client() as admin:
            response = await admin.post("/api/v1/workers/register", json={
                "name": name, "capabilities": capabilities or [{"name": "code"}],
                "tags": tags})
        assert response.status_code == 201, response.text
        registration: dict[str, Any] = response.json()
        return registration

    async def take_view(self, view_url: str) -> httpx2.Response:
        async with httpx2.AsyncClient(trust_env=False) as anyone:
            return await anyone.get(view_url, headers={"Accept": "application/json"})

    async def enroll(self, name: str, capabilities: list[Any] | None = None,
                     tags: str = "code", *, capacity: int = 1) -> ProtocolWorker:
        """Register, take the token from the one-time view, heartbeat once: online."""
        registration = await self.register(name, capabilities, tags)
        viewed = await self.take_view(registration["viewUrl"])
        assert viewed.status_code == 200, viewed.text
        worker = ProtocolWorker(self.url, name, viewed.json()["token"])
        self.workers.append(worker)
        beat = await worker.heartbeat(tags=tags, capacity=capacity)
        assert beat.status_code == 200, beat.text
        return worker

    async def submit(self, who: str = "user", **spec: Any) -> dict[str, Any]:
        async with self.client(who) as client:
            response = await client.post("/api/jobs", json={"prompt": "do it", **spec})
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@asynccontextmanager
async def running_fleet(engine: Engine, clock: FakeClock) -> AsyncIterator[Fleet]:
    tokens = {name: (await engine.tokens.mint(name, scopes))[1]
              for name, scopes in CALLERS.items()}
    app = build_app(engine_opener(engine), ServerConfig())
    async with serve_app(app) as url:
        fleet = Fleet(url, engine, clock, tokens)
        try:
            yield fleet
        finally:
            for worker in fleet.workers:
                await worker.aclose()


@pytest.fixture
async def fleet(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Fleet]:
    async with open_fleet_engine(tmp_path, clock) as engine, \
            running_fleet(engine, clock) as running:
        yield running


def error_of(response: httpx2.Response, status: int, code: str | None = None
             ) -> dict[str, Any]:
    """The §5 error object of ``response``, checked to carry ``status`` (and ``code``)."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error
