"""``GET /api/providers`` and ``POST /api/providers/{name}/ping``."""

from __future__ import annotations

from pydantic import RootModel

from core.models import ProviderStatus
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution

__all__ = ["ENDPOINTS", "ProviderList", "contribute"]


class ProviderList(RootModel[list[ProviderStatus]]):
    """Every configured provider with its health, in config order."""


async def list_providers(call: ApiCall) -> ProviderList:
    """List providers

    Each provider with its type, model, role (default, fallback) and health: healthy,
    degraded, down or unknown, with the time of the last check and the last error."""
    return ProviderList(await call.engine.list_providers())


async def ping_provider(call: ApiCall) -> ProviderStatus:
    """Check a provider now

    A live reachability check; the provider's status afterwards. A token restricted to
    some providers may only ping those."""
    name = call.path("name")
    call.principal.require_provider(name)
    return await call.engine.ping_provider(name)


ENDPOINTS = [
    Endpoint("GET", "/api/providers", list_providers, "dispatch", ProviderList,
             tag="providers"),
    Endpoint("POST", "/api/providers/{name}/ping", ping_provider, "dispatch", ProviderStatus,
             tag="providers"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
