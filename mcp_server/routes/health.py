"""``GET /api/health``: liveness and provider counts, no authentication."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_server.app import AppContext, Contribution

__all__ = ["contribute"]


def contribute(ctx: AppContext) -> Contribution:
    async def health(_: Request) -> JSONResponse:
        info = await ctx.engine().health_info()
        return JSONResponse({
            "status": info.status,
            "version": info.version,
            "uptime": round(info.uptime_s, 3),
            "providers": {k: info.providers.get(k, 0) for k in ("healthy", "degraded", "down")},
        })

    return Contribution(routes=[Route("/api/health", health, methods=["GET"])],
                        public=("/api/health",))
