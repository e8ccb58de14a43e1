"""``POST /api/tokens``, ``GET /api/tokens``, ``DELETE /api/tokens/{id}`` (admin).

Minting never answers with the raw token: it goes behind a one-time view
(:mod:`mcp_server.routes.view`) and the answer carries the link, ``viewUrl``. Creating and
revoking are audited as ``token.create`` / ``token.revoke`` by the caller, with the token's
display prefix but never its value.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.auth import DEFAULT_SCOPES, TokenInfo
from core.models import Page, WireModel
from core.principal import SCOPES
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.paging import Paging, window

__all__ = ["ENDPOINTS", "NO_STORE", "TokenCreate", "TokenCreated", "TokenQuery", "contribute"]

NO_STORE = (("Cache-Control", "no-store"),)

ScopeName = Annotated[str, Field(json_schema_extra={"enum": list(SCOPES)})]


class TokenCreate(WireModel):
    """A token to mint."""

    name: str = Field(min_length=1, max_length=100,
                      description="What the token is for; audit entries name it.")
    scopes: list[ScopeName] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        description="Scopes to grant (`admin` implies all); default: "
                    + ", ".join(DEFAULT_SCOPES) + ".")
    providers: list[str] | None = Field(
        default=None, description="Only these providers may be dispatched to; null: any.")


class TokenCreated(WireModel):
    """A minted token: its record and the one-time link that shows its value."""

    token: TokenInfo
    view_url: str = Field(description="Shows the raw token once (HTML, or JSON with "
                                      "`Accept: application/json`), then answers 410.")


class TokenQuery(Paging):
    include_revoked: bool = Field(default=False, description="List revoked tokens too.")


async def create_token(call: ApiCall) -> TokenCreated:
    """Mint a token

    The answer never holds the raw token: `viewUrl` shows it once, within
    `server.viewTtlS` seconds."""
    spec = call.body_as(TokenCreate)
    engine = call.engine
    info, raw = await engine.tokens.mint(spec.name, spec.scopes, spec.providers)
    nonce = await engine.views.create(raw, name=info.name, kind=info.kind)
    await engine.audit.record(call.principal.actor, "token.create", info.id, {
        "name": info.name, "kind": info.kind, "prefix": info.prefix, "scopes": info.scopes,
        "providers": info.providers,
    })
    return TokenCreated(token=info, view_url=f"{call.base_url()}/view/{nonce}")


async def list_tokens(call: ApiCall) -> Page[TokenInfo]:
    """List tokens, newest first

    Prefix, name, scopes, providers and last use; never a token's value."""
    q = call.query_as(TokenQuery)
    items, total = window(await call.engine.tokens.list(include_revoked=q.include_revoked), q)
    return Page[TokenInfo](items=items, total=total, limit=q.limit, offset=q.offset)


async def revoke_token(call: ApiCall) -> None:
    """Revoke a token, at once

    Revoking a revoked token changes nothing."""
    engine = call.engine
    before = await engine.tokens.get(call.path("id"))
    info = await engine.tokens.revoke(before.id)
    if before.revoked_at is None:
        await engine.audit.record(call.principal.actor, "token.revoke", info.id,
                                  {"name": info.name, "prefix": info.prefix})


ENDPOINTS = [
    Endpoint("POST", "/api/tokens", create_token, "admin", TokenCreated, status=201,
             body=TokenCreate, headers=NO_STORE, tag="tokens"),
    Endpoint("GET", "/api/tokens", list_tokens, "admin", Page[TokenInfo], query=TokenQuery,
             tag="tokens"),
    Endpoint("DELETE", "/api/tokens/{id}", revoke_token, "admin", None, status=204,
             tag="tokens"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
