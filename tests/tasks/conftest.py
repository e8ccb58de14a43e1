from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from core.clock import FakeClock
from core.config import Settings
from core.engine import Engine
from core.store import open_sqlite
from core.tasks.service import TaskService
from tests.support.scripted import ScriptedProvider
from tests.tasks.builders import START, OpenEngine, task_settings
from tests.tasks.fakes import Sleeps, fake_dns


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def providers() -> dict[str, ScriptedProvider]:
    return {name: ScriptedProvider(name) for name in ("main", "backup", "other")}


@pytest.fixture
def sleeps() -> Sleeps:
    """Webhook retry backoffs, recorded instead of slept."""
    return Sleeps()


@pytest.fixture
def open_engine(
    tmp_path: Path, clock: FakeClock, providers: dict[str, ScriptedProvider], sleeps: Sleeps
) -> OpenEngine:
    """Open an engine on the test's SQLite file (every engine opened shares it)."""
    (tmp_path / "ctx").mkdir(exist_ok=True)

    @asynccontextmanager
    async def opener(
        settings: Settings | None = None, **service: Any
    ) -> AsyncIterator[Engine]:
        settings = settings or task_settings(tmp_path)
        store = open_sqlite(tmp_path / "tasks.db")
        async with Engine.open(tmp_path, settings=settings, clock=clock, store=store) as eng:
            eng.providers.clear()
            eng.providers.update(providers)
            service.setdefault("resolver", fake_dns({}))
            eng.tasks = TaskService(eng.store, eng, clock, settings, eng.http, sleep=sleeps,
                                    **service)
            yield eng

    return opener


@pytest.fixture
async def engine(open_engine: OpenEngine) -> AsyncIterator[Engine]:
    async with open_engine() as eng:
        yield eng


@pytest.fixture
def service(engine: Engine) -> TaskService:
    return engine.tasks

