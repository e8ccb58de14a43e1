"""Bearer-token authentication for the HTTP edge, and how the caller reaches a tool.

:class:`BearerAuth` is ASGI middleware: on a protected path it turns
``Authorization: Bearer <token>`` into a :class:`~core.principal.Principal` through
``engine.tokens.authenticate`` (or uses :data:`~core.principal.LOCAL` when the server runs
with ``auth: none``), and stores it on the ASGI scope as ``scope["user"]``. A missing,
malformed, unknown or revoked token ends the request with 401 and the §5 error body.

The MCP transports hand every message to the server together with the Starlette request it
arrived on (``ctx.request_context.request``), including legacy SSE, whose messages are
POSTed separately and handled in the session's own task. :func:`request_principal` reads the
principal back from that request's scope, so it works the same on every transport, without
context variables. ``scope["user"]`` is also an SDK ``AuthenticatedUser``: the SDK binds each
SSE and Streamable HTTP session to the token that opened it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from core.engine import Engine
from core.errors import ModelReinsError, Unauthorized
from core.principal import LOCAL, Principal

__all__ = [
    "BearerAuth",
    "PathPolicy",
    "PrincipalUser",
    "bearer_token",
    "error_response",
    "request_principal",
]

PathPolicy = Callable[[str], bool]
"""Whether a request path needs an authenticated caller."""

LocalEngine = Callable[[], Engine]
"""The server's own engine: authenticating tokens needs the store, not a remote client."""


class PrincipalUser(AuthenticatedUser):
    """The authenticated caller as Starlette and the MCP SDK see it, carrying our principal."""

    def __init__(self, principal: Principal) -> None:
        super().__init__(AccessToken(
            token=principal.token_id or "", client_id=principal.token_id or principal.name,
            scopes=sorted(principal.scopes), subject=principal.actor,
        ))
        self.principal = principal


def bearer_token(scope: Scope) -> str | None:
    """The raw token of an ``Authorization: Bearer …`` header, if there is one."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


async def error_response(send: Send, exc: ModelReinsError,
                         headers: dict[str, str] | None = None) -> None:
    """Send ``{"error": {...}}`` with the error's HTTP status."""
    body = json.dumps({"error": exc.to_dict()}).encode()
    raw_headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": exc.http_status,
                "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


_USERS_KEPT = 1024


class BearerAuth:
    """Authenticate requests on protected paths; others pass untouched."""

    def __init__(self, app: ASGIApp, *, engine: LocalEngine, protected: PathPolicy,
                 require_token: bool = True) -> None:
        self.app = app
        self.engine = engine
        self.protected = protected
        self.require_token = require_token
        self._local = PrincipalUser(LOCAL)
        self._users: dict[Principal, tuple[PrincipalUser, AuthCredentials]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self.require_token:
            scope["user"] = self._local
            scope["auth"] = AuthCredentials(["admin"])
            await self.app(scope, receive, send)
            return
        raw = bearer_token(scope)
        try:
            principal = await self.engine().tokens.authenticate(raw)
        except Unauthorized as exc:
            challenge = 'Bearer realm="modelreins"'
            if raw is not None:
                challenge += ', error="invalid_token"'
            await error_response(send, exc, {"WWW-Authenticate": challenge})
            return
        scope["user"], scope["auth"] = self._users.get(principal) or self._remember(principal)
        await self.app(scope, receive, send)

    def _remember(self, principal: Principal) -> tuple[PrincipalUser, AuthCredentials]:
        # Callers are few and repeat: their request-scope objects are made once each.
        if len(self._users) >= _USERS_KEPT:
            self._users.clear()
        made = self._users[principal] = (PrincipalUser(principal),
                                         AuthCredentials(sorted(principal.scopes)))
        return made


def request_principal(ctx: Context) -> Principal:
    """The caller of a tool served over HTTP; fails closed when the request carries none."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, PrincipalUser):
        return user.principal
    raise Unauthorized("no authenticated caller on this request")
