"""``GET /api/providers`` and ``POST /api/providers/{name}/ping``."""

from __future__ import annotations

import httpx2

from core.errors import ProviderError
from tests.rest.conftest import Api, error_of
from tests.support.scripted import ScriptedProvider


async def test_providers_are_listed_in_config_order_with_their_roles(
    admin: httpx2.AsyncClient,
) -> None:
    response = await admin.get("/api/providers")
    assert response.status_code == 200
    listing = response.json()
    assert [p["name"] for p in listing] == ["main", "backup", "other"]
    main = listing[0]
    assert main["default"] is True and main["fallback"] is False
    assert main["status"] == "unknown" and main["lastCheck"] is None
    assert listing[1]["fallback"] is True


async def test_ping_checks_the_provider_now(
    admin: httpx2.AsyncClient, scripted: dict[str, ScriptedProvider],
) -> None:
    healthy = await admin.post("/api/providers/main/ping")
    assert healthy.status_code == 200 and healthy.json()["status"] == "healthy"
    assert healthy.json()["lastCheck"].endswith("Z")
    scripted["backup"].ping_error = ProviderError("connection refused")
    down = (await admin.post("/api/providers/backup/ping")).json()
    assert down["status"] != "healthy" and "connection refused" in down["lastError"]


async def test_restricted_token_may_only_ping_its_providers(api: Api) -> None:
    async with api.client(api.other) as client:
        error_of(await client.post("/api/providers/main/ping"), 403, "FORBIDDEN")
        assert (await client.post("/api/providers/other/ping")).status_code == 200


async def test_ping_of_an_unknown_provider_is_404(admin: httpx2.AsyncClient) -> None:
    error_of(await admin.post("/api/providers/nope/ping"), 404, "NOT_FOUND")


async def test_ping_takes_no_body(admin: httpx2.AsyncClient) -> None:
    response = await admin.post("/api/providers/main/ping", json={"deep": True})
    error_of(response, 400, "VALIDATION_ERROR")
    assert (await admin.post("/api/providers/main/ping", json={})).status_code == 200
