from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """A client that ignores proxy settings from the environment: fakes live on loopback."""
    async with httpx2.AsyncClient(trust_env=False) as client:
        yield client
