from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.http_client import HttpClient


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    """The providers' outbound client (fakes live on loopback)."""
    async with HttpClient() as client:
        yield client
