"""The real ``serve`` app for worker tests: in-process over a temp home, or as a subprocess.

Workers are enrolled the way an operator does it — ``POST /api/v1/workers/register`` as the
admin, then the one-time view for the worker's token — and jobs go in through
``POST /api/jobs`` and are read back with ``GET /api/jobs/{id}?wait=S``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from core.config import ServerConfig, parse_settings
from core.engine import Engine, open_memory_store
from mcp_server.app import build_app
from tests.mcp.conftest import engine_opener, serve_app

__all__ = ["Admin", "running_server"]


@dataclass
class Admin:
    """The admin's view of a running server."""

    url: str
    token: str

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.url, trust_env=False, timeout=60,
                                  headers={"Authorization": f"Bearer {self.token}"})

    async def enroll(self, name: str, tags: str = "") -> str:
        """Register worker ``name``; its token, from the one-time view."""
        async with self.client() as api:
            registered = await api.post("/api/v1/workers/register", json={
                "name": name, "capabilities": [{"name": "code"}], "tags": tags})
            assert registered.status_code == 201, registered.text
            viewed = await api.get(registered.json()["viewUrl"],
                                   headers={"Accept": "application/json"})
            assert viewed.status_code == 200, viewed.text
        token: str = viewed.json()["token"]
        return token

    async def submit(self, prompt: str, **spec: Any) -> dict[str, Any]:
        async with self.client() as api:
            response = await api.post("/api/jobs", json={"prompt": prompt, **spec})
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    async def finished(self, job_id: int, wait_s: float = 25.0) -> dict[str, Any]:
        """The job once it is done/failed/…; fails the test if it is still open."""
        async with self.client() as api:
            response = await api.get(f"/api/jobs/{job_id}", params={"wait": wait_s})
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        assert job["status"] in ("done", "failed", "escalated", "cancelled"), job
        return job


@asynccontextmanager
async def running_server(home: Path) -> AsyncIterator[Admin]:
    """The whole ``serve`` app (token auth, real clock, maintenance running) on loopback."""
    settings = parse_settings({"providers": {"echo": {"type": "echo", "default": True}}},
                              env={}, home=home)
    async with Engine.open(home, settings=settings, store=open_memory_store()) as engine:
        _, admin = await engine.tokens.mint("admin", ["admin"])
        async with serve_app(build_app(engine_opener(engine), ServerConfig())) as url:
            yield Admin(url, admin)
