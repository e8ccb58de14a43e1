"""The MCP transports: Streamable HTTP at ``/mcp``, legacy SSE at ``/mcp/sse``.

SSE clients GET ``/mcp/sse``; its first event names ``/mcp/messages/?session_id=…`` as the
path to POST messages to. Both transports serve the same :class:`MCPServer`. Every path under
``/mcp`` needs a bearer token (see :mod:`mcp_server.auth`); the Host check is app-wide
(:mod:`mcp_server.hosts`), so the SDK's own copy of it is off here.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from mcp.server.transport_security import TransportSecuritySettings

from mcp_server.app import AppContext, Contribution

__all__ = ["MCP_PATH", "MESSAGE_PATH", "SSE_PATH", "contribute"]

MCP_PATH = "/mcp"
SSE_PATH = "/mcp/sse"
MESSAGE_PATH = "/mcp/messages/"


def contribute(ctx: AppContext) -> Contribution:
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    limit = ctx.config.max_body_bytes
    streamable = ctx.mcp.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=security,
        max_request_body_size=limit)
    sse = ctx.mcp.sse_app(
        sse_path=SSE_PATH, message_path=MESSAGE_PATH, transport_security=security,
        max_request_body_size=limit)

    def sessions() -> AbstractAsyncContextManager[None]:
        return ctx.mcp.session_manager.run()

    return Contribution(routes=[*streamable.routes, *sse.routes], protected=(MCP_PATH,),
                        lifespan=sessions)
