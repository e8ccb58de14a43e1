from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from core.http_transport import PooledTransport


@pytest.fixture(params=["httpx2", "engine"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx2.AsyncClient]:
    """A client that ignores proxy settings from the environment: fakes live on loopback.

    Every adapter test runs on httpx2's stock transport and on the engine's own
    (:class:`~core.http_transport.PooledTransport`), which must fail the same ways."""
    transport = PooledTransport(limits=httpx2.Limits()) if request.param == "engine" else None
    async with httpx2.AsyncClient(trust_env=False, transport=transport) as client:
        yield client
