"""Fixtures for remote mode: the real ``serve`` app on loopback over scripted providers, and
:class:`~core.remote.RemoteEngine` clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.api import EngineAPI
from core.remote import RemoteEngine
from tests.rest.conftest import Api, open_engine, running_api
from tests.support.scripted import ScriptedProvider

PROVIDERS = ("main", "backup", "other")


@pytest.fixture
def scripted() -> dict[str, ScriptedProvider]:
    """``main`` (default), ``backup`` (fallback) and ``other``, each answering "ok"."""
    return {name: ScriptedProvider(name) for name in PROVIDERS}


@pytest.fixture
async def api(tmp_path: Path, scripted: dict[str, ScriptedProvider]) -> AsyncIterator[Api]:
    """The whole ``serve`` app on a loopback port, with a token per kind of caller."""
    async with open_engine(tmp_path, scripted) as engine, running_api(engine) as running:
        yield running


@pytest.fixture
async def remote(api: Api) -> AsyncIterator[RemoteEngine]:
    """A client of :func:`api` holding the admin token."""
    async with RemoteEngine.open(api.url, api.admin) as client:
        yield client


@pytest.fixture(params=["local", "remote"])
async def either(request: pytest.FixtureRequest, api: Api,
                 remote: RemoteEngine) -> EngineAPI:
    """The server's own engine, then a remote client of it: a test using this fixture
    shows that both sides of the interface behave alike."""
    return api.engine if request.param == "local" else remote
