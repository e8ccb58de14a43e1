"""``GET /api/health``: liveness and provider counts, no authentication."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution

__all__ = ["ENDPOINTS", "Health", "ProviderCounts", "contribute"]


class ProviderCounts(BaseModel):
    healthy: int
    degraded: int
    down: int


class Health(BaseModel):
    status: str = Field(description="`ok`, or `degraded` when providers are down and none "
                                    "is healthy.")
    version: str
    uptime: float = Field(description="Seconds since the server started.")
    providers: ProviderCounts


async def health(call: ApiCall) -> Health:
    """Is the server up

    Its version, uptime and how many providers are healthy, degraded or down. Needs no
    token."""
    info = await call.engine.health_info()
    counts = ProviderCounts(**{k: info.providers.get(k, 0)
                               for k in ("healthy", "degraded", "down")})
    return Health(status=info.status, version=info.version, uptime=round(info.uptime_s, 3),
                  providers=counts)


ENDPOINTS = [Endpoint("GET", "/api/health", health, None, Health, tag="server")]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
