"""The queue's rows in ``GET /api/openapi.json``: listed, with the right security, and true
— a schemathesis run over them against a live server finds no 5xx and no answer its schema
forbids."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from core.config import ServerConfig, parse_settings
from core.engine import Engine, open_memory_store
from core.principal import LOCAL
from mcp_server.app import build_app
from mcp_server.routes import artifacts, jobs, reviews, worker_protocol, workers
from tests.fleet.conftest import SETTINGS, Fleet
from tests.rest.test_openapi import CHECKS
from tests.support.loopback import serve_in_thread

ENDPOINTS = [*jobs.ENDPOINTS, *workers.ENDPOINTS, *reviews.ENDPOINTS,
             *worker_protocol.ENDPOINTS, *artifacts.ENDPOINTS]


async def test_every_queue_row_is_documented_with_its_security(fleet: Fleet) -> None:
    async with fleet.client(None) as anyone:
        document = (await anyone.get("/api/openapi.json")).json()
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert "security" not in operation, endpoint.path  # the global bearer requirement
        assert operation.get("x-scope") == endpoint.scope
        assert {"401", "403"} <= set(operation["responses"])
    upload = document["paths"]["/artifacts/upload"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data"}
    claim = document["paths"]["/jobs/{id}/claim"]["post"]
    job = claim["responses"]["200"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][job["$ref"].rsplit("/", 1)[-1]]
    assert {"assigned_to", "lease_expires_at", "max_attempts"} <= set(schema["properties"])


class _Live:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.token = ""
        self.ready = threading.Event()

    @asynccontextmanager
    async def open_engine(self) -> AsyncIterator[Engine]:
        settings = parse_settings(SETTINGS, env={}, home=self.home)
        async with Engine.open(self.home, settings=settings,
                               store=open_memory_store()) as engine:
            yield engine

    async def on_ready(self, engine: Engine) -> None:
        _, self.token = await engine.tokens.mint("schemathesis", ["admin"])
        await engine.fleet.register("w1", capabilities=["code"], tags="code", actor=LOCAL)
        self.ready.set()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    live = _Live(tmp_path_factory.mktemp("fleet-schemathesis"))
    app = build_app(live.open_engine, ServerConfig(), on_ready=live.on_ready)
    with serve_in_thread(app) as url:
        assert live.ready.wait(10), "the server did not become ready"
        yield url, live.token


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_the_queue_routes_keep_to_their_schema(live_server: tuple[str, str],
                                              mode: GenerationMode) -> None:
    url, token = live_server
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json")
    mine = {(e.method, e.path) for e in ENDPOINTS}
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if (op.method.upper(), op.path) in mine]
    assert {(op.method.upper(), op.path) for op in operations} == mine
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                   checks=CHECKS)

        try:
            conforms()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label
