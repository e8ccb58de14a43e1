"""``GET /api/openapi.json``: the OpenAPI 3.1 document of every endpoint the app serves,
generated on first request from the app's own routes (so a route module added to
:data:`~mcp_server.app.ROUTE_MODULES` appears in it without further ado) and kept in the
app's state."""

from __future__ import annotations

from typing import Any

from pydantic import RootModel
from starlette.responses import JSONResponse, Response

from core import __version__
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, ApiRoute, Endpoint, contribution
from mcp_server.rest.openapi import build_document

__all__ = ["DESCRIPTION", "ENDPOINTS", "OpenApiDocument", "contribute"]

DESCRIPTION = """\
ModelReins dispatches prompts to model providers (with fallback), runs scheduled prompt \
tasks and keeps an audit log. Every failure answers `{"error": {code, message, provider?, \
retryAfter?, details?}}`; a 429 also carries `Retry-After`. Listings are pages: `{items, \
total, limit, offset}`, newest first."""


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


async def openapi(call: ApiCall) -> Response:
    """This API's OpenAPI 3.1 document

    Generated from the same models the endpoints validate requests with and serialize
    answers from. Needs no token."""
    state = call.request.app.state
    doc: dict[str, Any] | None = getattr(state, "openapi", None)
    if doc is None:
        endpoints = [e for route in call.request.app.routes if isinstance(route, ApiRoute)
                     for e in route.endpoints]
        doc = build_document(endpoints, title="ModelReins", version=__version__,
                             description=DESCRIPTION)
        state.openapi = doc
    return JSONResponse(doc)


ENDPOINTS = [
    Endpoint("GET", "/api/openapi.json", openapi, None, OpenApiDocument, tag="server"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
