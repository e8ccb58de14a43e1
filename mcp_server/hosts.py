"""DNS-rebinding protection: answer only to the names this server is meant to be reached by.

A web page can make a browser send requests to ``127.0.0.1:8484`` under a hostname the
attacker controls; the ``Host`` (and ``Origin``) header then names that hostname. So every
request, on every route, must name the configured host, a loopback name (``127.0.0.1``,
``localhost``, ``[::1]``, with any port) or the host of ``server.publicUrl``. A server bound to
all interfaces cannot know its names and accepts any host (token auth is mandatory there).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from core.config import WILDCARD_HOSTS
from core.errors import Forbidden
from mcp_server.auth import error_response

__all__ = ["LOOPBACK_NAMES", "HostGuard", "allowed_names", "host_name"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _bracket(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def allowed_names(host: str, public_url: str | None = None) -> frozenset[str] | None:
    """Host names (lowercase, IPv6 in brackets) this server answers to; None means any."""
    if host.strip().lower() in WILDCARD_HOSTS:
        return None
    names = {*LOOPBACK_NAMES, _bracket(host.strip().lower())}
    if public_url:
        public = urlsplit(public_url).hostname
        if public:
            names.add(_bracket(public.lower()))
    return frozenset(names)


def host_name(host_header: str) -> str:
    """``[::1]:8484`` → ``[::1]``; ``Example.COM:80`` → ``example.com``."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else _bracket(value)


def _origin_name(origin: str) -> str | None:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _bracket(parts.hostname.lower())


class HostGuard:
    """Refuse (403, §5 body) a request whose Host or Origin names a host not allowed."""

    def __init__(self, app: ASGIApp, *, names: frozenset[str] | None) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.names is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        problem = None
        if host_name(host) not in self.names:
            problem = f"Host header '{host}' is not allowed"
        elif origin and _origin_name(origin) not in self.names:
            problem = f"Origin '{origin}' is not allowed"
        if problem is None:
            await self.app(scope, receive, send)
            return
        known = ", ".join(sorted(self.names))
        await error_response(send, Forbidden(
            f"{problem} (DNS-rebinding protection). This server answers to: {known}. "
            "Reach it by one of those names, or set server.publicUrl to add one."))
